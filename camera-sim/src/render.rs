//! The renderer: composites every visible person into the camera's background at a frame time,
//! with per-frame ground truth.
//!
//! A person is the elliptical, feathered face region of their photo (about 1.6× the face box,
//! with hair and chin) warped by a similarity transform (scale, in-plane rotation, translation)
//! and sampled bilinearly from a mip pyramid, above a plain torso. Effects (motion blur, gain,
//! noise, JPEG re-encoding, occlusion) are applied per appearance. A frame is a pure function of
//! the plan, the photos and the time: the same seed gives byte-identical frames.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rollcall_domain::face::{BBox, Landmarks};
use rollcall_domain::Frame;
use serde::{Deserialize, Serialize};

use crate::photo::{PhotoLibrary, PreparedPhoto, FEATHER_START};
use crate::photo_ref::PhotoRef;
use crate::plan::{Appearance, CameraPlan, PersonKind, Plan};
use crate::scenario::{CameraSpec, Side};
use crate::{background, seed};

/// A plan cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// An appearance needs a photo that is not in the [`PhotoLibrary`].
    #[error(
        "no face photo for {person} (appearance {appearance}): {photo} is not in the photo library"
    )]
    MissingPhoto {
        appearance: u32,
        person: String,
        photo: Box<PhotoRef>,
    },
    /// No camera with this id.
    #[error("unknown camera {0:?}")]
    UnknownCamera(String),
}

/// Ground truth of one face in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthFace {
    /// Student or stranger id.
    pub id: String,
    pub kind: PersonKind,
    /// The appearance this face belongs to (see [`Plan::arrivals`]).
    pub appearance: u32,
    /// The photo's face box mapped into the frame (centre and size follow the transform).
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// The photo's five landmarks mapped into the frame.
    pub landmarks: Landmarks,
    /// Fraction of the face box covered by an occluder (0 = none).
    pub occlusion: f32,
}

/// Which frames a stream contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Every frame from the first person's pre-roll to the last person's post-roll. By default
    /// only the frames around appearances are rendered (empty stretches are skipped and the
    /// timestamps jump).
    pub continuous: bool,
    /// Only frames at or after this instant (ms since the Unix epoch).
    pub from_ms: Option<i64>,
    /// Only frames before this instant.
    pub to_ms: Option<i64>,
}

struct Inner {
    plan: Plan,
    photos: BTreeMap<PhotoRef, Arc<PreparedPhoto>>,
    backgrounds: Vec<Arc<Vec<u8>>>,
}

/// Renders the frames of a [`Plan`]. Cheap to clone (shared), `Send + Sync`.
#[derive(Clone)]
pub struct Renderer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("cameras", &self.inner.plan.cameras.len())
            .field("photos", &self.inner.photos.len())
            .finish()
    }
}

impl Renderer {
    /// Prepares the photos of every appearance and the background of every camera.
    pub fn new(plan: Plan, library: &PhotoLibrary) -> Result<Renderer, RenderError> {
        let mut photos = BTreeMap::new();
        for a in plan.appearances() {
            if photos.contains_key(&a.photo) {
                continue;
            }
            let p = library
                .get(&a.photo)
                .ok_or_else(|| RenderError::MissingPhoto {
                    appearance: a.id,
                    person: a.person.clone(),
                    photo: Box::new(a.photo.clone()),
                })?;
            photos.insert(a.photo.clone(), Arc::new(PreparedPhoto::new(p)));
        }
        Ok(Renderer::from_parts(plan, photos))
    }

    /// The renderer of `plan` with its prepared photos (the cameras' backgrounds drawn here).
    fn from_parts(plan: Plan, photos: BTreeMap<PhotoRef, Arc<PreparedPhoto>>) -> Renderer {
        let backgrounds = plan
            .cameras
            .iter()
            .map(|c| Arc::new(background::render(c.seed, c.spec.width, c.spec.height)))
            .collect();
        Renderer {
            inner: Arc::new(Inner {
                plan,
                photos,
                backgrounds,
            }),
        }
    }

    /// A renderer of another plan of the same scenario (e.g. its cameras at another size)
    /// with this renderer's prepared photos; fails if the plan shows a photo this one lacks.
    pub fn with_plan(&self, plan: Plan) -> Result<Renderer, RenderError> {
        let mut photos = BTreeMap::new();
        for a in plan.appearances() {
            if photos.contains_key(&a.photo) {
                continue;
            }
            let p = self
                .inner
                .photos
                .get(&a.photo)
                .ok_or_else(|| RenderError::MissingPhoto {
                    appearance: a.id,
                    person: a.person.clone(),
                    photo: Box::new(a.photo.clone()),
                })?;
            photos.insert(a.photo.clone(), p.clone());
        }
        Ok(Renderer::from_parts(plan, photos))
    }

    /// The plan rendered.
    pub fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    /// Camera ids in scenario order.
    pub fn camera_ids(&self) -> Vec<String> {
        self.inner
            .plan
            .cameras
            .iter()
            .map(|c| c.spec.id.clone())
            .collect()
    }

    fn camera_index(&self, id: &str) -> Result<usize, RenderError> {
        self.inner
            .plan
            .cameras
            .iter()
            .position(|c| c.spec.id == id)
            .ok_or_else(|| RenderError::UnknownCamera(id.to_string()))
    }

    /// The frame of `camera` at `t_ms` (ms since the Unix epoch) and the faces in it, in drawing
    /// order (far to near).
    pub fn render_frame(
        &self,
        camera: &str,
        t_ms: i64,
    ) -> Result<(Frame, Vec<TruthFace>), RenderError> {
        let ci = self.camera_index(camera)?;
        Ok(self.render_index(ci, t_ms))
    }

    /// Timestamps of the frames of `camera` (see [`StreamOptions`]).
    pub fn frame_times(&self, camera: &str, opts: StreamOptions) -> Result<Vec<i64>, RenderError> {
        let ci = self.camera_index(camera)?;
        let p = &self.inner.plan;
        Ok(frame_times(
            &p.cameras[ci],
            p.pre_roll_ms,
            p.post_roll_ms,
            opts,
        ))
    }

    /// A stream of the frames of `camera`.
    pub fn stream(&self, camera: &str, opts: StreamOptions) -> Result<RenderedStream, RenderError> {
        let ci = self.camera_index(camera)?;
        let times = self.frame_times(camera, opts)?;
        Ok(RenderedStream {
            renderer: self.clone(),
            camera: ci,
            times,
            pos: 0,
        })
    }

    /// One stream per camera, in scenario order.
    pub fn streams(&self, opts: StreamOptions) -> Vec<RenderedStream> {
        self.camera_ids()
            .iter()
            .filter_map(|id| self.stream(id, opts).ok())
            .collect()
    }

    fn render_index(&self, ci: usize, t_ms: i64) -> (Frame, Vec<TruthFace>) {
        let cam = &self.inner.plan.cameras[ci];
        let (w, h) = (cam.spec.width as usize, cam.spec.height as usize);
        let mut buf: Vec<u8> = self.inner.backgrounds[ci].as_ref().clone();
        let mut visible: Vec<(&Appearance, crate::plan::Pose)> = cam
            .appearances
            .iter()
            .filter(|a| a.visible_at(t_ms))
            .map(|a| (a, a.pose_at(t_ms)))
            .collect();
        // Far (small) first, near (large) on top.
        visible.sort_by(|a, b| a.1.face_h.total_cmp(&b.1.face_h).then(a.0.id.cmp(&b.0.id)));
        let mut truth = Vec::with_capacity(visible.len());
        for (a, pose) in visible {
            let Some(photo) = self.inner.photos.get(&a.photo) else {
                continue;
            };
            let mut img = Canvas {
                w,
                h,
                rgb: &mut buf,
            };
            truth.push(draw_person(&mut img, a, &pose, photo, t_ms));
        }
        if cam.spec.noise > 0.0 {
            let s = cam.seed ^ seed::mix(t_ms as u64);
            add_noise(&mut buf, w, h, [0, 0, w, h], cam.spec.noise, s);
        }
        let frame = Frame::from_rgb(w as u32, h as u32, buf).unwrap_or_else(|_| {
            // Unreachable: the background has the camera's size.
            Frame::from_rgb(1, 1, vec![0; 3]).expect("1x1")
        });
        (frame, truth)
    }
}

/// Frame timestamps of a camera: an epoch-aligned grid at the camera's fps, restricted to the
/// windows around appearances (or continuous).
pub(crate) fn frame_times(cam: &CameraPlan, pre: i64, post: i64, opts: StreamOptions) -> Vec<i64> {
    let mut iv: Vec<(i64, i64)> = cam
        .appearances
        .iter()
        .map(|a| (a.start_ms - pre, a.end_ms() + post))
        .collect();
    iv.sort();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (a, b) in iv {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    if opts.continuous && !merged.is_empty() {
        let (a, b) = (merged[0].0, merged[merged.len() - 1].1);
        merged = vec![(a, b)];
    }
    let fps = i64::from(cam.spec.fps.max(1));
    let mut out = Vec::new();
    for (a, b) in merged {
        let a = opts.from_ms.map_or(a, |f| a.max(f));
        let b = opts.to_ms.map_or(b, |t| b.min(t));
        if a >= b {
            continue;
        }
        // Smallest k with floor(k·1000/fps) ≥ a.
        let mut k = (a * fps).div_euclid(1000);
        while (k * 1000).div_euclid(fps) < a {
            k += 1;
        }
        loop {
            let t = (k * 1000).div_euclid(fps);
            if t >= b {
                break;
            }
            out.push(t);
            k += 1;
        }
    }
    out
}

/// A camera's frames in time order: yields `(timestamp_ms, frame, truth)`.
pub trait CameraStream: Iterator<Item = (i64, Frame, Vec<TruthFace>)> + Send {
    /// The camera.
    fn camera(&self) -> &CameraSpec;
    /// Index of the next frame (0 for the first).
    fn next_index(&self) -> u64;
    /// Number of frames in the whole stream.
    fn total_frames(&self) -> u64;
}

/// The [`CameraStream`] of a [`Renderer`]; renders each frame when it is pulled.
#[derive(Debug, Clone)]
pub struct RenderedStream {
    renderer: Renderer,
    camera: usize,
    times: Vec<i64>,
    pos: usize,
}

impl RenderedStream {
    /// Timestamps of every frame of the stream.
    pub fn times(&self) -> &[i64] {
        &self.times
    }
    /// Starts again from the first frame.
    pub fn rewind(&mut self) {
        self.pos = 0;
    }
}

impl Iterator for RenderedStream {
    type Item = (i64, Frame, Vec<TruthFace>);

    fn next(&mut self) -> Option<Self::Item> {
        let t = *self.times.get(self.pos)?;
        self.pos += 1;
        let (f, truth) = self.renderer.render_index(self.camera, t);
        Some((t, f, truth))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.times.len() - self.pos;
        (n, Some(n))
    }
}

impl ExactSizeIterator for RenderedStream {}

impl CameraStream for RenderedStream {
    fn camera(&self) -> &CameraSpec {
        &self.renderer.inner.plan.cameras[self.camera].spec
    }
    fn next_index(&self) -> u64 {
        self.pos as u64
    }
    fn total_frames(&self) -> u64 {
        self.times.len() as u64
    }
}

struct Canvas<'a> {
    w: usize,
    h: usize,
    rgb: &'a mut [u8],
}

/// Similarity transform photo → frame: `f = c_f + s·R(θ)·(p − c_p)`.
#[derive(Clone, Copy)]
struct Similarity {
    s: f32,
    cos: f32,
    sin: f32,
    c_p: [f32; 2],
    c_f: [f32; 2],
}

impl Similarity {
    fn forward(&self, p: [f32; 2]) -> [f32; 2] {
        let (dx, dy) = (p[0] - self.c_p[0], p[1] - self.c_p[1]);
        [
            self.c_f[0] + self.s * (self.cos * dx - self.sin * dy),
            self.c_f[1] + self.s * (self.sin * dx + self.cos * dy),
        ]
    }
    fn inverse(&self, f: [f32; 2]) -> [f32; 2] {
        let (dx, dy) = (f[0] - self.c_f[0], f[1] - self.c_f[1]);
        let k = 1.0 / self.s;
        [
            self.c_p[0] + k * (self.cos * dx + self.sin * dy),
            self.c_p[1] + k * (-self.sin * dx + self.cos * dy),
        ]
    }
    /// Inverse of a frame-space vector.
    fn inverse_vec(&self, v: [f32; 2]) -> [f32; 2] {
        let k = 1.0 / self.s;
        [
            k * (self.cos * v[0] + self.sin * v[1]),
            k * (-self.sin * v[0] + self.cos * v[1]),
        ]
    }
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Bilinear sample of a pyramid level at continuous coordinates (pixel centres at +0.5); `None`
/// outside the level.
#[inline]
fn sample(l: &crate::photo::Level, x: f32, y: f32) -> Option<[f32; 3]> {
    if !(x >= 0.0 && y >= 0.0 && x <= l.w as f32 && y <= l.h as f32) {
        return None;
    }
    let u = (x - 0.5).clamp(0.0, (l.w - 1) as f32);
    let v = (y - 0.5).clamp(0.0, (l.h - 1) as f32);
    let x0 = u as usize;
    let y0 = v as usize;
    let x1 = (x0 + 1).min(l.w - 1);
    let y1 = (y0 + 1).min(l.h - 1);
    let fx = u - x0 as f32;
    let fy = v - y0 as f32;
    let i00 = (y0 * l.w + x0) * 3;
    let i01 = (y0 * l.w + x1) * 3;
    let i10 = (y1 * l.w + x0) * 3;
    let i11 = (y1 * l.w + x1) * 3;
    let p = &l.rgb;
    let mut out = [0f32; 3];
    for c in 0..3 {
        let top = f32::from(p[i00 + c]) * (1.0 - fx) + f32::from(p[i01 + c]) * fx;
        let bot = f32::from(p[i10 + c]) * (1.0 - fx) + f32::from(p[i11 + c]) * fx;
        out[c] = top * (1.0 - fy) + bot * fy;
    }
    Some(out)
}

fn draw_person(
    img: &mut Canvas,
    a: &Appearance,
    pose: &crate::plan::Pose,
    photo: &PreparedPhoto,
    t_ms: i64,
) -> TruthFace {
    let fx = &a.effects;
    let bw = photo.face.width();
    let bh = photo.face.height();
    let s = (pose.face_h / bh).max(1e-4);
    let theta = pose.angle - photo.roll;
    let (cp_x, cp_y) = photo.face.center();
    let tf = Similarity {
        s,
        cos: theta.cos(),
        sin: theta.sin(),
        c_p: [cp_x, cp_y],
        c_f: pose.center,
    };
    let gain = if fx.gain.is_finite() {
        fx.gain.clamp(0.05, 4.0)
    } else {
        1.0
    };
    let mut rng = seed::rng(a.seed, &["look"]);

    // Torso: clothing under the head, from the neck out to the shoulders and down.
    let face_w = bw * s;
    let face_h = bh * s;
    let cloth: [f32; 3] = [
        rng.gen_range(30.0..200.0),
        rng.gen_range(30.0..200.0),
        rng.gen_range(30.0..200.0),
    ];
    let neck_y = pose.center[1] + 0.62 * face_h;
    draw_torso(
        img,
        pose.center[0],
        neck_y,
        face_w.max(face_h * 0.75),
        face_h,
        |t| {
            let k = gain * (1.0 - 0.3 * t);
            [cloth[0] * k, cloth[1] * k, cloth[2] * k]
        },
    );

    // Head: the feathered ellipse of the photo.
    let ec = photo.ellipse_c;
    let ea = photo.ellipse_a;
    let r = ea[0].max(ea[1]);
    let cf = tf.forward(ec);
    let rf = r * s + 2.0;
    let x0 = (cf[0] - rf).floor().max(0.0) as usize;
    let y0 = (cf[1] - rf).floor().max(0.0) as usize;
    let x1 = ((cf[0] + rf).ceil().max(0.0) as usize).min(img.w);
    let y1 = ((cf[1] + rf).ceil().max(0.0) as usize).min(img.h);
    // Pyramid level: minify by at most 2 in the level.
    let mut level = 0usize;
    while level + 1 < photo.levels.len() && s * ((1u32 << (level + 1)) as f32) <= 1.0 {
        level += 1;
    }
    let lvl = &photo.levels[level];
    let lscale = 1.0 / (1u32 << level) as f32;
    // Motion blur: samples along the image velocity (horizontal when standing still).
    let blur_len = if fx.motion_blur_px.is_finite() {
        fx.motion_blur_px.clamp(0.0, 60.0)
    } else {
        0.0
    };
    let n_blur = if blur_len >= 0.75 {
        ((blur_len / 1.5).ceil() as usize + 1).clamp(2, 12)
    } else {
        1
    };
    let speed = (pose.velocity[0].powi(2) + pose.velocity[1].powi(2)).sqrt();
    let dir = if speed > 1.0 {
        [pose.velocity[0] / speed, pose.velocity[1] / speed]
    } else {
        [1.0, 0.0]
    };
    let step_f = if n_blur > 1 {
        blur_len / (n_blur - 1) as f32
    } else {
        0.0
    };
    let step_p = tf.inverse_vec([dir[0] * step_f, dir[1] * step_f]);
    let noise = if fx.noise.is_finite() {
        fx.noise.clamp(0.0, 64.0)
    } else {
        0.0
    };
    let noise_seed = a.seed ^ seed::mix(t_ms as u64 ^ 0x5EED);
    let inv_ax = 1.0 / ea[0];
    let inv_ay = 1.0 / ea[1];
    for y in y0..y1 {
        for x in x0..x1 {
            let p = tf.inverse([x as f32 + 0.5, y as f32 + 0.5]);
            let dx = (p[0] - ec[0]) * inv_ax;
            let dy = (p[1] - ec[1]) * inv_ay;
            let rr = dx * dx + dy * dy;
            if rr >= 1.0 {
                continue;
            }
            let alpha = 1.0 - smoothstep(FEATHER_START, 1.0, rr.sqrt());
            let mut acc = [0f32; 3];
            let mut n = 0u32;
            for k in 0..n_blur {
                let o = k as f32 - (n_blur - 1) as f32 * 0.5;
                let px = (p[0] + step_p[0] * o - photo.origin[0]) * lscale;
                let py = (p[1] + step_p[1] * o - photo.origin[1]) * lscale;
                if let Some(c) = sample(lvl, px, py) {
                    acc[0] += c[0];
                    acc[1] += c[1];
                    acc[2] += c[2];
                    n += 1;
                }
            }
            if n == 0 {
                continue;
            }
            // Samples outside the photo fade out.
            let alpha = alpha * n as f32 / n_blur as f32;
            let k = gain / n as f32;
            let i = (y * img.w + x) * 3;
            let grain = if noise > 0.0 {
                let h = seed::mix(noise_seed ^ ((y * img.w + x) as u64));
                [
                    seed::gauss_from_hash(h) * noise,
                    seed::gauss_from_hash(seed::mix(h)) * noise,
                    seed::gauss_from_hash(seed::mix(h ^ 1)) * noise,
                ]
            } else {
                [0.0; 3]
            };
            for c in 0..3 {
                let src = (acc[c] * k + grain[c]).clamp(0.0, 255.0);
                let dst = f32::from(img.rgb[i + c]);
                img.rgb[i + c] = (dst + (src - dst) * alpha).round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    // Ground truth.
    let c = pose.center;
    let bbox = BBox {
        x1: (c[0] - face_w * 0.5).clamp(0.0, img.w as f32),
        y1: (c[1] - face_h * 0.5).clamp(0.0, img.h as f32),
        x2: (c[0] + face_w * 0.5).clamp(0.0, img.w as f32),
        y2: (c[1] + face_h * 0.5).clamp(0.0, img.h as f32),
    };
    let landmarks = photo.landmarks.map(|p| tf.forward(p));

    // Occlusion: a solid block (hand, scarf, phone) over part of the face box.
    let occ = if fx.occlusion.is_finite() {
        fx.occlusion.clamp(0.0, 0.6)
    } else {
        0.0
    };
    if occ > 0.0 {
        let side = fx.occlusion_side.unwrap_or(match rng.gen_range(0..4) {
            0 => Side::Top,
            1 => Side::Left,
            2 => Side::Right,
            _ => Side::Bottom,
        });
        let shade: f32 = rng.gen_range(40.0..170.0);
        let col = [
            shade,
            shade * rng.gen_range(0.8..1.1),
            shade * rng.gen_range(0.8..1.2),
        ];
        let (bx0, by0, bx1, by1) = (
            c[0] - face_w * 0.5,
            c[1] - face_h * 0.5,
            c[0] + face_w * 0.5,
            c[1] + face_h * 0.5,
        );
        let pad = face_w * 0.08;
        let (rx0, ry0, rx1, ry1) = match side {
            Side::Top => (bx0 - pad, by0 - pad, bx1 + pad, by0 + occ * face_h),
            Side::Bottom => (bx0 - pad, by1 - occ * face_h, bx1 + pad, by1 + pad),
            Side::Left => (bx0 - pad, by0 - pad, bx0 + occ * face_w, by1 + pad),
            Side::Right => (bx1 - occ * face_w, by0 - pad, bx1 + pad, by1 + pad),
        };
        fill_rect(
            img,
            rx0,
            ry0,
            rx1,
            ry1,
            [col[0] * gain, col[1] * gain, col[2] * gain],
        );
    }

    // Compression artefacts on the person's head region (sensor noise was added while drawing).
    let region = [x0, y0, x1, y1];
    if let Some(q) = fx.jpeg_quality {
        jpeg_roundtrip(img, region, q.clamp(1, 100));
    }

    TruthFace {
        id: a.person.clone(),
        kind: a.kind,
        appearance: a.id,
        bbox,
        landmarks,
        occlusion: occ,
    }
}

/// Draws a torso: neck width at `top`, widening smoothly to the shoulders over 0.35 face
/// heights, then slightly wider down to 4.5 face heights (or the frame's bottom), with
/// antialiased sides. `color(t)` gives the colour at relative height `t` in [0, 1].
fn draw_torso(
    img: &mut Canvas,
    cx: f32,
    top: f32,
    face_w: f32,
    face_h: f32,
    color: impl Fn(f32) -> [f32; 3],
) {
    if face_h < 1.0 {
        return;
    }
    let neck = 0.32 * face_w;
    let shoulders = 1.25 * face_w;
    let shoulder_y = top + 0.35 * face_h;
    let bottom = top + 4.5 * face_h;
    let y0 = top.floor().max(0.0) as usize;
    let y1 = (bottom.ceil().max(0.0) as usize).min(img.h);
    for y in y0..y1 {
        let yf = y as f32 + 0.5;
        let hw = if yf < shoulder_y {
            neck + (shoulders - neck) * smoothstep(top, shoulder_y, yf).sqrt()
        } else {
            shoulders + 0.08 * (yf - shoulder_y)
        };
        // Rounded shoulder tops: fade the first rows in.
        let row_alpha = ((yf - top) / 1.5).clamp(0.0, 1.0);
        let col = color(((yf - top) / (bottom - top)).clamp(0.0, 1.0)).map(|v| v.clamp(0.0, 255.0));
        let xa = (cx - hw - 1.0).floor().max(0.0) as usize;
        let xb = ((cx + hw + 1.0).ceil().max(0.0) as usize).min(img.w);
        for x in xa..xb {
            let d = hw - (x as f32 + 0.5 - cx).abs();
            let alpha = (d + 0.5).clamp(0.0, 1.0) * row_alpha;
            if alpha <= 0.0 {
                continue;
            }
            let i = (y * img.w + x) * 3;
            for (px, c) in img.rgb[i..i + 3].iter_mut().zip(col) {
                let dst = f32::from(*px);
                *px = (dst + (c - dst) * alpha).round() as u8;
            }
        }
    }
}

fn fill_rect(img: &mut Canvas, x0: f32, y0: f32, x1: f32, y1: f32, c: [f32; 3]) {
    let xa = x0.round().max(0.0) as usize;
    let ya = y0.round().max(0.0) as usize;
    let xb = (x1.round().max(0.0) as usize).min(img.w);
    let yb = (y1.round().max(0.0) as usize).min(img.h);
    let c = c.map(|v| v.round().clamp(0.0, 255.0) as u8);
    for y in ya..yb {
        for x in xa..xb {
            let i = (y * img.w + x) * 3;
            img.rgb[i..i + 3].copy_from_slice(&c);
        }
    }
}

/// Adds approximately Gaussian noise of standard deviation `sigma` to a region.
pub(crate) fn add_noise(rgb: &mut [u8], w: usize, h: usize, r: [usize; 4], sigma: f32, s: u64) {
    let [x0, y0, x1, y1] = r;
    for y in y0..y1.min(h) {
        let row = seed::mix(s ^ (y as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for x in x0..x1.min(w) {
            let i = (y * w + x) * 3;
            let base = seed::mix(row ^ x as u64);
            // One luminance draw and a weaker chroma draw per pixel.
            let l = seed::gauss_from_hash(base) * sigma;
            let ch = seed::mix(base);
            for c in 0..3 {
                let cn = (((ch >> (c * 16)) & 0xFFFF) as f32 / 65535.0 - 0.5) * sigma * 0.7;
                let v = f32::from(rgb[i + c]) + l + cn;
                rgb[i + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Re-encodes a region (aligned to the 8×8 JPEG grid of the frame) as JPEG and pastes it back.
fn jpeg_roundtrip(img: &mut Canvas, r: [usize; 4], quality: u8) {
    let x0 = r[0] / 8 * 8;
    let y0 = r[1] / 8 * 8;
    let x1 = r[2].div_ceil(8).saturating_mul(8).min(img.w);
    let y1 = r[3].div_ceil(8).saturating_mul(8).min(img.h);
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let mut crop = Vec::with_capacity(cw * ch * 3);
    for y in y0..y1 {
        let i = (y * img.w + x0) * 3;
        crop.extend_from_slice(&img.rgb[i..i + cw * 3]);
    }
    let Ok(bytes) = encode_jpeg_portable(&crop, cw as u32, ch as u32, quality) else {
        return;
    };
    let Ok(dec) = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg) else {
        return;
    };
    let dec = dec.to_rgb8();
    if dec.width() as usize != cw || dec.height() as usize != ch {
        return;
    }
    let d = dec.as_raw();
    for y in 0..ch {
        let i = ((y0 + y) * img.w + x0) * 3;
        img.rgb[i..i + cw * 3].copy_from_slice(&d[y * cw * 3..(y + 1) * cw * 3]);
    }
}

/// JPEG with the `image` crate's (scalar) encoder: identical bytes on every CPU. Used inside
/// rendering (the JPEG-artefact effect), so that rendered pixels never depend on the CPU (the
/// output's encoder, [`crate::output::encode_jpeg`], is the faster SIMD one).
fn encode_jpeg_portable(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut enc =
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    enc.encode(rgb, width, height, image::ExtendedColorType::Rgb8)?;
    Ok(out)
}
