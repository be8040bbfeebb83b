//! Rendering speed: [`bench_render`] renders a synthetic stream on the calling thread and times
//! rendering and JPEG encoding separately.

use std::time::Instant;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::output::encode_jpeg;
use crate::photo::{synthetic_face, PhotoLibrary};
use crate::photo_ref::PhotoRef;
use crate::plan::{Appearance, CameraPlan, PersonKind, Plan, Trajectory};
use crate::render::{Renderer, StreamOptions};
use crate::scenario::{CameraSpec, Effects};
use crate::seed;

/// Result of [`bench_render`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderBench {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Length of the stream, seconds of video.
    pub video_seconds: f64,
    pub frames: u64,
    /// Faces drawn over all frames.
    pub faces: u64,
    /// Wall time spent rendering frames (background copy, compositing, effects), seconds.
    pub render_s: f64,
    /// Wall time spent encoding the frames as JPEG (quality 90), seconds.
    pub encode_s: f64,
}

impl RenderBench {
    /// Rendering time per frame, ms.
    pub fn render_ms_per_frame(&self) -> f64 {
        if self.frames == 0 {
            0.0
        } else {
            self.render_s * 1000.0 / self.frames as f64
        }
    }
    /// Rendering plus encoding time per frame, ms.
    pub fn total_ms_per_frame(&self) -> f64 {
        if self.frames == 0 {
            0.0
        } else {
            (self.render_s + self.encode_s) * 1000.0 / self.frames as f64
        }
    }
}

impl std::fmt::Display for RenderBench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} @ {} fps, {:.0} s of video: {} frames, {} faces; render {:.2} s ({:.2} ms/frame), \
             + JPEG q90 {:.2} s = {:.2} s ({:.2} ms/frame), one thread",
            self.width,
            self.height,
            self.fps,
            self.video_seconds,
            self.frames,
            self.faces,
            self.render_s,
            self.render_ms_per_frame(),
            self.encode_s,
            self.render_s + self.encode_s,
            self.total_ms_per_frame()
        )
    }
}

/// Renders a `seconds`-long `width × height` stream at `fps` on the calling thread and times it.
///
/// The stream is representative of a busy lobby: a new arrival every 3.5 s (every third a group
/// of two, every second one with motion blur, noise or JPEG artefacts), synthetic face photos
/// (no fixtures needed). Every frame is also encoded as JPEG (quality 90), timed separately.
pub fn bench_render(seconds: f64, fps: u32, width: u32, height: u32) -> RenderBench {
    let fps = fps.clamp(1, 60);
    let width = width.clamp(64, 8192);
    let height = height.clamp(64, 8192);
    let seconds = if seconds.is_finite() {
        seconds.clamp(0.0, 3600.0)
    } else {
        0.0
    };
    let (plan, library, t0) = synthetic_plan(seconds, fps, width, height);
    let t1 = t0 + (seconds * 1000.0) as i64;
    let renderer = match Renderer::new(plan, &library) {
        Ok(r) => r,
        Err(_) => {
            return RenderBench {
                width,
                height,
                fps,
                video_seconds: seconds,
                frames: 0,
                faces: 0,
                render_s: 0.0,
                encode_s: 0.0,
            }
        }
    };
    let opts = StreamOptions {
        continuous: true,
        from_ms: Some(t0),
        to_ms: Some(t1),
    };
    let times = renderer.frame_times("bench", opts).unwrap_or_default();
    let (mut render_s, mut encode_s, mut faces) = (0.0, 0.0, 0u64);
    for t in &times {
        let a = Instant::now();
        let Ok((frame, truth)) = renderer.render_frame("bench", *t) else {
            continue;
        };
        render_s += a.elapsed().as_secs_f64();
        faces += truth.len() as u64;
        let b = Instant::now();
        let jpg = encode_jpeg(&frame, 90).map(|j| j.len()).unwrap_or(0);
        encode_s += b.elapsed().as_secs_f64();
        std::hint::black_box(jpg);
    }
    RenderBench {
        width,
        height,
        fps,
        video_seconds: seconds,
        frames: times.len() as u64,
        faces,
        render_s,
        encode_s,
    }
}

fn synthetic_plan(seconds: f64, fps: u32, width: u32, height: u32) -> (Plan, PhotoLibrary, i64) {
    let s = 0xBE7C4u64;
    let mut library = PhotoLibrary::new();
    let photos: Vec<PhotoRef> = (0..4)
        .map(|i| {
            let p = PhotoRef::new(format!("synthetic://face-{i}"));
            library.insert(p.clone(), synthetic_face(i));
            p
        })
        .collect();
    let spec = CameraSpec {
        id: "bench".into(),
        campus: "bench".into(),
        door: "front".into(),
        width,
        height,
        fps,
        noise: 0.0,
    };
    let cam_seed = seed::derive(s, &["camera", "bench"]);
    let layout = crate::background::layout(cam_seed, width, height);
    let (w, h) = (width as f32, height as f32);
    let t0: i64 = 1_740_988_800_000;
    let mut rng = seed::rng(s, &["bench"]);
    let mut apps = Vec::new();
    let mut t = t0 - 1000;
    let mut k = 0u32;
    while t < t0 + (seconds * 1000.0) as i64 {
        let n = if k % 3 == 2 { 2 } else { 1 };
        let h0 = 40.0 / 720.0 * h;
        let h1 = 120.0 / 720.0 * h;
        let x0 = layout.door_cx;
        let x1 = (x0 + rng.gen_range(-0.2f32..0.2) * w).clamp(0.25 * w, 0.75 * w);
        for m in 0..n {
            let off = m as f32 - (n as f32 - 1.0) * 0.5;
            let effects = match k % 6 {
                1 => Effects {
                    motion_blur_px: 4.0,
                    ..Effects::default()
                },
                3 => Effects {
                    noise: 5.0,
                    gain: 0.8,
                    ..Effects::default()
                },
                5 => Effects {
                    jpeg_quality: Some(40),
                    ..Effects::default()
                },
                _ => Effects::default(),
            };
            apps.push(Appearance {
                id: apps.len() as u32,
                person: format!("p{}", (k as usize + m) % photos.len()),
                kind: PersonKind::Student,
                photo: photos[(k as usize + m) % photos.len()].clone(),
                camera: "bench".into(),
                start_ms: t + m as i64 * 200,
                approach_ms: 2500,
                linger_ms: 0,
                lesson: None,
                group: (n > 1).then_some(k),
                pass: 1,
                trajectory: Trajectory {
                    start: [x0 + off * 2.4 * h0, 0.31 * h],
                    end: [x1 + off * 2.4 * h1, 0.4 * h],
                    start_face_h: h0,
                    end_face_h: h1,
                    sway_deg: 3.0,
                    sway_hz: 1.0,
                    sway_phase: rng.gen_range(0.0..6.0),
                },
                effects,
                seed: rng.gen(),
            });
        }
        t += 3500;
        k += 1;
    }
    let plan = Plan {
        seed: s,
        utc_offset_minutes: 0,
        pre_roll_ms: 1000,
        post_roll_ms: 1000,
        jpeg_quality: 90,
        cameras: vec![CameraPlan {
            spec,
            seed: cam_seed,
            appearances: apps,
        }],
        arrivals: Vec::new(),
        attendance: Vec::new(),
    };
    (plan, library, t0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bench_renders_every_frame() {
        let b = bench_render(2.0, 5, 320, 180);
        assert_eq!(b.frames, 10);
        assert!(b.faces > 0);
    }
}
