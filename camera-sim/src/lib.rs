//! rollcall camera-sim: synthetic lobby-camera walk-through streams rendered from real face
//! photos, with exact ground truth.
//!
//! The flow:
//!
//! 1. [`Scenario::load`] reads and validates a TOML scenario (see `camera-sim/README.md`).
//! 2. The caller decodes every photo of [`Scenario::render_photos`] (e.g. with
//!    [`decode_photo`]), finds its face box and five landmarks with the real detector (the face
//!    [`PhotoRef::choose_face`] picks) and puts a [`FacePhoto`] into a [`PhotoLibrary`].
//!    camera-sim never runs a detector itself; hand-annotated references can be loaded with
//!    [`PhotoLibrary::load_annotated`].
//! 3. [`plan()`] turns the scenario into per-camera [`Appearance`]s plus the arrival and
//!    attendance ground truth ([`Plan`]); deterministic for the seed.
//! 4. A [`Renderer`] renders frames at any time; [`Renderer::stream`] gives a [`CameraStream`]
//!    yielding `(timestamp_ms, Frame, Vec<TruthFace>)`; [`write_sequence`] writes
//!    `frames/<camera>/<000000>.jpg` and `truth.json`; [`MjpegServer`] serves live MJPEG.
//!
//! [`Simulation`] bundles steps 1–4. [`bench_render`] measures rendering speed.

pub mod background;
mod bench;
mod error;
mod mjpeg;
mod output;
mod photo;
mod photo_ref;
mod plan;
mod render;
pub mod scenario;
mod seed;
mod video;

pub use bench::{bench_render, RenderBench};
pub use error::ScenarioError;
pub use mjpeg::{LiveAnchor, MjpegServer, ServeError, ServeOptions, BOUNDARY};
pub use output::{
    encode_jpeg, write_sequence, GroundTruth, OutputError, SequenceOptions, SequenceSummary,
    TruthCamera, TruthFrame,
};
pub use photo::{decode_photo, synthetic_face, FacePhoto, PhotoError, PhotoLibrary};
pub use photo_ref::PhotoRef;
pub use plan::{
    plan, Appearance, ArrivalTruth, AttendanceTruth, CameraPlan, PersonKind, Plan, Pose, Trajectory,
};
pub use render::{CameraStream, RenderError, RenderedStream, Renderer, StreamOptions, TruthFace};
pub use scenario::{ArrivalStatus, Effects, Lesson, Overrides, Scenario, Side};
pub use video::{AviWriter, VideoError};

use std::path::Path;

/// Any camera-sim error.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Photo(#[from] PhotoError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A loaded scenario, its plan and a renderer.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub scenario: Scenario,
    pub renderer: Renderer,
}

impl Simulation {
    /// Plans the scenario and prepares rendering with the caller's face photos.
    pub fn new(scenario: Scenario, photos: &PhotoLibrary) -> Result<Simulation, SimError> {
        let p = plan(&scenario);
        let renderer = Renderer::new(p, photos)?;
        Ok(Simulation { scenario, renderer })
    }

    /// Loads a scenario file; `locate_face` is called once per photo to render with the
    /// reference and the decoded pixels, and must return the face box and landmarks (the real
    /// detector's; use [`PhotoRef::choose_face`] to pick among several faces and
    /// [`PhotoRef::annotation`] as the fallback).
    pub fn load_with<E>(
        path: impl AsRef<Path>,
        locate_face: impl FnMut(
            &PhotoRef,
            &rollcall_domain::Frame,
        ) -> Result<
            (
                rollcall_domain::face::BBox,
                rollcall_domain::face::Landmarks,
            ),
            E,
        >,
    ) -> Result<Simulation, SimError>
    where
        E: std::fmt::Display,
    {
        Self::load_overridden_with(path, &Overrides::default(), locate_face)
    }

    /// [`Simulation::load_with`] on a scenario whose seed or camera streams are replaced (see
    /// [`Scenario::load_overridden`]).
    pub fn load_overridden_with<E>(
        path: impl AsRef<Path>,
        over: &Overrides,
        mut locate_face: impl FnMut(
            &PhotoRef,
            &rollcall_domain::Frame,
        ) -> Result<
            (
                rollcall_domain::face::BBox,
                rollcall_domain::face::Landmarks,
            ),
            E,
        >,
    ) -> Result<Simulation, SimError>
    where
        E: std::fmt::Display,
    {
        let scenario = Scenario::load_overridden(path, over)?;
        let mut lib = PhotoLibrary::new();
        for p in scenario.render_photos() {
            let frame = decode_photo(&p.path)?;
            let (bbox, lm) = locate_face(&p, &frame).map_err(|e| PhotoError::InvalidFace {
                what: p.to_string(),
                message: e.to_string(),
            })?;
            let photo = FacePhoto::new(frame, bbox, lm)?;
            lib.insert(p, photo);
        }
        Simulation::new(scenario, &lib)
    }

    /// Loads a scenario whose rendered photos all carry hand annotations (`box` and
    /// `landmarks`), without any detector. Fails naming the first photo without one.
    pub fn load_annotated(path: impl AsRef<Path>) -> Result<Simulation, SimError> {
        let scenario = Scenario::load(path)?;
        let mut lib = PhotoLibrary::new();
        let missing = lib.load_annotated(scenario.render_photos().iter())?;
        if let Some(p) = missing.first() {
            return Err(PhotoError::InvalidFace {
                what: p.to_string(),
                message: "no `box`/`landmarks` annotation and no detector".into(),
            }
            .into());
        }
        Simulation::new(scenario, &lib)
    }

    /// The same scenes as seen through every camera's **main stream** of `width`×`height`
    /// (the renderer of [`Simulation::renderer`] being the substream that faces are found in):
    /// the same seed, so the same people walk the same paths at the same instants, scaled to the
    /// new size; motion blur, given in frame pixels, grows with the size as a real exposure's
    /// would. The plan's ground truth is in the new size's pixels.
    pub fn main_stream(&self, width: u32, height: u32) -> Result<Renderer, SimError> {
        let mut scenario = self.scenario.clone();
        let over = Overrides {
            size: Some((width, height)),
            ..Default::default()
        };
        let factors: Vec<f32> = scenario
            .file
            .cameras
            .iter()
            .map(|c| height as f32 / c.height.max(1) as f32)
            .collect();
        let first_camera_of = |campus: Option<&str>| {
            scenario
                .file
                .cameras
                .iter()
                .position(|c| Some(c.campus.as_str()) == campus)
        };
        let mut scaled = Vec::new();
        for a in &scenario.file.arrivals {
            let cam = match &a.camera {
                Some(id) => scenario.file.cameras.iter().position(|c| &c.id == id),
                None => first_camera_of(scenario.lesson(&a.lesson).map(|l| l.campus.as_str())),
            };
            let f = cam.and_then(|i| factors.get(i)).copied().unwrap_or(1.0);
            scaled.push(a.effects.map(|mut e| {
                e.motion_blur_px *= f;
                e
            }));
        }
        for (a, e) in scenario.file.arrivals.iter_mut().zip(scaled) {
            a.effects = e;
        }
        over.apply_to(&mut scenario)?;
        let p = plan(&scenario);
        Ok(self.renderer.with_plan(p)?)
    }

    /// The plan (appearances and ground truth).
    pub fn plan(&self) -> &Plan {
        self.renderer.plan()
    }
}
