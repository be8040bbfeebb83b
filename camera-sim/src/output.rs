//! Image-sequence output: `frames/<camera>/<000000>.jpg` and `truth.json`.

use std::path::{Path, PathBuf};

use rollcall_domain::Frame;
use serde::{Deserialize, Serialize};

use crate::plan::{ArrivalTruth, AttendanceTruth};
use crate::render::{Renderer, StreamOptions, TruthFace};

/// Writing an output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode a JPEG frame: {0}")]
    Encode(String),
    #[error("cannot serialise the ground truth: {0}")]
    Json(String),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error(transparent)]
    Video(#[from] crate::video::VideoError),
}

/// Encodes packed RGB as a baseline JPEG (4:2:0) with `jpeg-encoder`. Its SIMD code path is
/// picked at run time, so the bytes are identical on one machine (and CPU kind) but may differ
/// between an AVX2 and a non-AVX2 CPU; the decoded pixels differ by at most rounding.
pub fn encode_jpeg_rgb(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, OutputError> {
    let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(OutputError::Encode(format!(
                "unsupported size {width}x{height}"
            )))
        }
    };
    if rgb.len() != width as usize * height as usize * 3 {
        return Err(OutputError::Encode(format!(
            "{} bytes for {width}x{height} RGB",
            rgb.len()
        )));
    }
    let mut out = Vec::with_capacity(rgb.len() / 10);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(rgb, w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| OutputError::Encode(e.to_string()))?;
    Ok(out)
}

/// Encodes a frame as JPEG.
pub fn encode_jpeg(frame: &Frame, quality: u8) -> Result<Vec<u8>, OutputError> {
    encode_jpeg_rgb(frame.rgb(), frame.width(), frame.height(), quality)
}

/// A camera in `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthCamera {
    pub id: String,
    pub campus: String,
    pub door: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Number of frames written.
    pub frames: u64,
    /// The camera's video file (relative to the output folder), when one was written: frame
    /// `index` of `frames` is at `index / fps` seconds of the video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
}

/// One frame in `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthFrame {
    pub camera: String,
    /// Index in the camera's sequence (the file name).
    pub index: u64,
    /// ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// Path of the JPEG relative to the output folder.
    pub file: String,
    pub persons: Vec<TruthFace>,
}

/// The whole `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub seed: u64,
    pub utc_offset_minutes: i32,
    pub cameras: Vec<TruthCamera>,
    pub frames: Vec<TruthFrame>,
    pub arrivals: Vec<ArrivalTruth>,
    pub attendance: Vec<AttendanceTruth>,
}

/// What to write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceOptions {
    /// Which frames (see [`StreamOptions`]).
    pub stream: StreamOptions,
    /// Only these cameras (default: all).
    pub cameras: Option<Vec<String>>,
    /// JPEG quality (default: the scenario's `simulation.jpeg_quality`).
    pub jpeg_quality: Option<u8>,
    /// Also write each camera as a Motion-JPEG AVI video, `out_dir/video/<camera>.avi`. A video
    /// has a constant frame rate, so this needs `stream.continuous` (every frame, no gaps).
    pub video: bool,
}

/// What [`write_sequence`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceSummary {
    pub frames: u64,
    pub bytes: u64,
    pub truth_path: PathBuf,
}

/// Renders every frame of the selected cameras into `out_dir/frames/<camera>/<index>.jpg`
/// (6-digit zero-padded index) and writes `out_dir/truth.json`.
pub fn write_sequence(
    renderer: &Renderer,
    out_dir: &Path,
    opts: &SequenceOptions,
) -> Result<SequenceSummary, OutputError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OutputError::Io { path, source }
    };
    let plan = renderer.plan();
    let quality = opts.jpeg_quality.unwrap_or(plan.jpeg_quality);
    let ids: Vec<String> = match &opts.cameras {
        Some(c) => c.clone(),
        None => renderer.camera_ids(),
    };
    let mut frames = Vec::new();
    let mut cameras = Vec::new();
    let mut bytes = 0u64;
    if opts.video && !opts.stream.continuous {
        return Err(OutputError::Video(crate::video::VideoError::Invalid(
            "a video needs a continuous stream (every frame at the camera's rate)".into(),
        )));
    }
    for id in &ids {
        let stream = renderer.stream(id, opts.stream)?;
        let spec = crate::render::CameraStream::camera(&stream).clone();
        let dir = out_dir.join("frames").join(id);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut video = None;
        let mut video_rel = None;
        if opts.video {
            let vdir = out_dir.join("video");
            std::fs::create_dir_all(&vdir).map_err(io(&vdir))?;
            let rel = format!("video/{id}.avi");
            video = Some(crate::video::AviWriter::create(
                &out_dir.join(&rel),
                spec.width,
                spec.height,
                spec.fps,
            )?);
            video_rel = Some(rel);
        }
        let mut n = 0u64;
        for (index, (t, frame, persons)) in stream.enumerate() {
            let name = format!("{index:06}.jpg");
            let path = dir.join(&name);
            let jpg = encode_jpeg(&frame, quality)?;
            std::fs::write(&path, &jpg).map_err(io(&path))?;
            if let Some(v) = video.as_mut() {
                v.push_jpeg(&jpg)?;
            }
            bytes += jpg.len() as u64;
            frames.push(TruthFrame {
                camera: id.clone(),
                index: index as u64,
                timestamp_ms: t,
                file: format!("frames/{id}/{name}"),
                persons,
            });
            n += 1;
        }
        cameras.push(TruthCamera {
            id: spec.id,
            campus: spec.campus,
            door: spec.door,
            width: spec.width,
            height: spec.height,
            fps: spec.fps,
            frames: n,
            video: video_rel,
        });
        if let Some(v) = video {
            bytes += v.finish()?;
        }
    }
    let truth = GroundTruth {
        seed: plan.seed,
        utc_offset_minutes: plan.utc_offset_minutes,
        cameras,
        frames,
        arrivals: plan
            .arrivals
            .iter()
            .filter(|a| ids.contains(&a.camera))
            .cloned()
            .collect(),
        attendance: plan.attendance.clone(),
    };
    let json = serde_json::to_vec_pretty(&truth).map_err(|e| OutputError::Json(e.to_string()))?;
    let truth_path = out_dir.join("truth.json");
    std::fs::write(&truth_path, &json).map_err(io(&truth_path))?;
    Ok(SequenceSummary {
        frames: truth.frames.len() as u64,
        bytes: bytes + json.len() as u64,
        truth_path,
    })
}
