//! `rollcall sim render | serve | bench`: camera-sim scenarios rendered with the faces the real
//! detector finds in the scenario's photos.

use crate::cmd_vision::VisionOpts;
use anyhow::Context;
use rollcall_camera_sim::{
    bench_render, write_sequence, MjpegServer, Overrides, PhotoRef, SequenceOptions, ServeOptions,
    Simulation,
};
use rollcall_domain::face::{BBox, Landmarks};
use rollcall_domain::Frame;
use rollcall_vision::pipeline::EmbedPolicy;
use rollcall_vision::FacePipeline;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum SimCmd {
    /// Render every camera of a scenario to `DIR/frames/<camera>/*.jpg` plus `DIR/truth.json`.
    Render {
        scenario: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// JPEG quality (default: the scenario's).
        #[arg(long)]
        quality: Option<u8>,
        /// Also write each camera as a Motion-JPEG AVI video (`DIR/video/<camera>.avi`); the
        /// streams are then continuous (every frame at the camera's rate, no skipped stretches).
        #[arg(long)]
        video: bool,
    },
    /// Serve every camera of a scenario as live MJPEG (`/camera/<id>.mjpg`) until Ctrl-C.
    Serve {
        scenario: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// As fast as the client reads instead of real time.
        #[arg(long)]
        fast: bool,
        /// Start again at the end.
        #[arg(long = "loop")]
        loop_forever: bool,
        /// Also serve each camera's main stream of this size (WIDTHxHEIGHT), the same scenes
        /// at the same instants, on `--main-listen` (two-stream cameras: `detect_url` is the
        /// scenario's stream, `url` this one).
        #[arg(long, value_parser = parse_size, requires = "main_listen")]
        main_size: Option<(u32, u32)>,
        #[arg(long)]
        main_listen: Option<String>,
    },
    /// Time rendering a 1280x720 stream (default 60 s at 10 fps) on one thread.
    Bench {
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        #[arg(long, default_value_t = 10)]
        fps: u32,
    },
}

/// The face of a scenario photo: the detector's face nearest the photo's hint (or the largest),
/// else the photo's hand annotation.
fn locate(p: &mut FacePipeline, r: &PhotoRef, frame: &Frame) -> anyhow::Result<(BBox, Landmarks)> {
    let faces = p.analyze(frame, EmbedPolicy::None)?;
    let boxes: Vec<BBox> = faces.iter().map(|f| f.observation.bbox).collect();
    if let Some(i) = r.choose_face(&boxes) {
        if let Some(f) = faces.get(i) {
            return Ok((f.observation.bbox, f.observation.landmarks));
        }
    }
    r.annotation()
        .with_context(|| format!("{r}: no face found and no annotation"))
}

/// The detector that finds the face of every scenario photo (see [`load_overridden`]).
pub const SCENE_DETECTOR: &str = "retinaface_mnet025";

pub fn load(v: &VisionOpts, scenario: &Path) -> anyhow::Result<Simulation> {
    load_overridden(v, scenario, &Overrides::default())
}

/// [`load`] with the scenario's seed or camera streams replaced.
pub fn load_overridden(
    v: &VisionOpts,
    scenario: &Path,
    over: &Overrides,
) -> anyhow::Result<Simulation> {
    // The scenes are laid out with the default detector whatever `--detector` names, so that
    // runs comparing detectors see the same pixels and the same ground truth.
    let layout = VisionOpts {
        detector: SCENE_DETECTOR.into(),
        det_size: None,
        ..v.clone()
    };
    let mut p = layout.open()?;
    Simulation::load_overridden_with(scenario, over, |r, frame| {
        locate(&mut p, r, frame).map_err(|e| format!("{e:#}"))
    })
    .with_context(|| format!("loading {}", scenario.display()))
}

/// Parses `WIDTHxHEIGHT` (e.g. `640x360`).
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 640x360"))?;
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?}: {t:?} is not a whole number of pixels"))
    };
    Ok((num(w)?, num(h)?))
}

pub async fn run(v: &VisionOpts, cmd: SimCmd) -> anyhow::Result<Value> {
    match cmd {
        SimCmd::Render {
            scenario,
            out,
            quality,
            video,
        } => {
            let sim = load(v, &scenario)?;
            let t = std::time::Instant::now();
            let opts = SequenceOptions {
                jpeg_quality: quality,
                video,
                stream: rollcall_camera_sim::StreamOptions {
                    continuous: video,
                    ..Default::default()
                },
                ..Default::default()
            };
            let s = write_sequence(&sim.renderer, &out, &opts)?;
            Ok(json!({
                "frames": s.frames,
                "bytes": s.bytes,
                "truth": s.truth_path,
                "arrivals": sim.plan().arrivals.len(),
                "seconds": t.elapsed().as_secs_f64(),
            }))
        }
        SimCmd::Serve {
            scenario,
            listen,
            fast,
            loop_forever,
            main_size,
            main_listen,
        } => {
            let sim = load(v, &scenario)?;
            let opts = ServeOptions {
                realtime: !fast,
                loop_forever,
                ..Default::default()
            };
            let main = match (main_size, main_listen) {
                (Some((w, h)), Some(addr)) => Some(MjpegServer::start(
                    sim.main_stream(w, h)?,
                    addr.as_str(),
                    opts,
                )?),
                _ => None,
            };
            let server = MjpegServer::start(sim.renderer, listen.as_str(), opts)?;
            for (cam, url) in server.urls() {
                let main_url = main.as_ref().and_then(|m| {
                    m.urls()
                        .into_iter()
                        .find(|(c, _)| *c == cam)
                        .map(|(_, u)| u)
                });
                match main_url {
                    Some(m) => println!("{}", json!({"camera": cam, "detect_url": url, "url": m})),
                    None => println!("{}", json!({"camera": cam, "url": url})),
                }
            }
            tokio::signal::ctrl_c().await?;
            server.stop();
            if let Some(m) = main {
                m.stop();
            }
            Ok(json!({"stopped": true}))
        }
        SimCmd::Bench { seconds, fps } => {
            let b = bench_render(seconds as f64, fps, 1280, 720);
            Ok(json!({"render": b.to_string()}))
        }
    }
}
