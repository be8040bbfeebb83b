//! Detect → quality → align → embed, as one object per worker.

use crate::align::{self, Resample};
use crate::detect::{Detection, Detector};
use crate::embed::Embedder;
use crate::manifest::{resolve_models_dir, Catalog, Thresholds};
use crate::quality::{assess, QualityConfig};
use crate::runtime::SessionOptions;
use crate::VisionError;
use rollcall_domain::face::FaceObservation;
use rollcall_domain::Frame;
use std::path::PathBuf;

/// Which models to run and how.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub detector: String,
    pub embedder: String,
    /// Letterbox size for dynamic-input detectors (e.g. 320 or 640).
    pub detector_size: Option<u32>,
    pub models_dir: Option<PathBuf>,
    /// Extra manifest directory (ArcFace, SFace, ...), on top of the built-in manifests.
    pub manifest_dir: Option<PathBuf>,
    pub quality: QualityConfig,
    pub session: SessionOptions,
    /// [`FacePipeline::analyze_many`] detects two frames per detector call
    /// ([`Detector::detect_pair`]) instead of one.
    pub mosaic: bool,
    /// How the aligned crop samples the frame.
    pub resample: Resample,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            detector: "retinaface_mnet025".into(),
            embedder: "mobilefacenet_128".into(),
            detector_size: None,
            models_dir: None,
            manifest_dir: None,
            quality: QualityConfig::default(),
            session: SessionOptions::default(),
            mosaic: true,
            resample: Resample::default(),
        }
    }
}

/// A face with its aligned crop (kept for review and enrollment).
#[derive(Debug, Clone)]
pub struct AnalyzedFace {
    pub observation: FaceObservation,
    pub aligned: Frame,
}

/// One camera instant to analyse: the frame faces are found in and, for a camera with two
/// streams, the main stream's frame of the same instant, from which the crops are cut.
#[derive(Debug, Clone, Copy)]
pub struct Shot<'a> {
    pub detect: &'a Frame,
    pub main: Option<&'a Frame>,
}

impl<'a> Shot<'a> {
    /// One stream: found and cut in the same frame.
    pub fn single(frame: &'a Frame) -> Self {
        Shot {
            detect: frame,
            main: None,
        }
    }

    /// The frame crops are cut from, and the scale from detect-frame to crop-frame pixels.
    fn crop_source(&self) -> (&'a Frame, f32, f32) {
        match self.main {
            Some(m) if self.detect.width() > 0 && self.detect.height() > 0 => (
                m,
                m.width() as f32 / self.detect.width() as f32,
                m.height() as f32 / self.detect.height() as f32,
            ),
            _ => (self.detect, 1.0, 1.0),
        }
    }
}

/// A detection in another frame's pixels (x scaled by `sx`, y by `sy`).
fn scale_detection(d: &Detection, sx: f32, sy: f32) -> Detection {
    if sx == 1.0 && sy == 1.0 {
        return d.clone();
    }
    let mut out = d.clone();
    out.bbox.x1 *= sx;
    out.bbox.x2 *= sx;
    out.bbox.y1 *= sy;
    out.bbox.y2 *= sy;
    for p in &mut out.landmarks {
        p[0] *= sx;
        p[1] *= sy;
    }
    out
}

/// Which faces to embed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedPolicy {
    /// Only faces that pass the quality gate.
    Passing,
    /// Every detected face.
    All,
    /// None (detection and quality only).
    None,
}

pub struct FacePipeline {
    pub detector: Detector,
    pub embedder: Embedder,
    pub quality: QualityConfig,
    /// Detect the frames of [`FacePipeline::analyze_many`] two per detector call.
    pub mosaic: bool,
    /// How the aligned crop samples the frame.
    pub resample: Resample,
}

impl FacePipeline {
    pub fn open(cfg: &PipelineConfig) -> Result<Self, VisionError> {
        let catalog = match &cfg.manifest_dir {
            Some(d) => Catalog::with_dir(d)?,
            None => Catalog::builtin(),
        };
        let dir = resolve_models_dir(cfg.models_dir.as_deref());
        let find = |id: &str| {
            catalog
                .get(id)
                .cloned()
                .ok_or_else(|| VisionError::Manifest {
                    path: id.to_string(),
                    reason: "no manifest with this id".into(),
                })
        };
        let detector =
            Detector::open(&find(&cfg.detector)?, &dir, cfg.detector_size, &cfg.session)?;
        let embedder = Embedder::open(&find(&cfg.embedder)?, &dir, &cfg.session)?;
        Ok(Self {
            detector,
            embedder,
            quality: cfg.quality,
            mosaic: cfg.mosaic,
            resample: cfg.resample,
        })
    }

    pub fn thresholds(&self) -> Thresholds {
        self.embedder.thresholds()
    }

    /// Aligns one detection onto the embedder's template.
    pub fn align(&self, frame: &Frame, det: &Detection) -> Frame {
        self.align_landmarks(frame, &det.landmarks, self.resample)
    }

    /// Aligns a face given by its five landmarks onto the embedder's template, sampling the
    /// frame with `resample`.
    pub fn align_landmarks(
        &self,
        frame: &Frame,
        landmarks: &rollcall_domain::face::Landmarks,
        resample: Resample,
    ) -> Frame {
        let (w, h) = self.embedder.input_size();
        align::align_with(frame, landmarks, self.embedder.template(), w, h, resample)
            // Degenerate landmarks (all in one point) cannot come from a working detector on a
            // real face; give a black crop that will fail the quality gate.
            .unwrap_or_else(|| Frame::from_rgb(w, h, vec![0; (w * h * 3) as usize]).expect("sized"))
    }

    /// Aligns one detection and runs the quality gate on it (not embedded yet).
    fn assess_detection(&self, frame: &Frame, d: &Detection) -> AnalyzedFace {
        let aligned = self.align(frame, d);
        let quality = assess(
            &self.quality,
            frame.width(),
            frame.height(),
            &d.bbox,
            d.score,
            &d.landmarks,
            Some(&aligned),
        );
        AnalyzedFace {
            observation: FaceObservation {
                bbox: d.bbox,
                landmarks: d.landmarks,
                quality,
                embedding: None,
            },
            aligned,
        }
    }

    /// Runs the whole pipeline on one frame. Faces come out highest detection score first.
    pub fn analyze(
        &mut self,
        frame: &Frame,
        policy: EmbedPolicy,
    ) -> Result<Vec<AnalyzedFace>, VisionError> {
        Ok(self
            .analyze_many(&[frame], policy)?
            .pop()
            .unwrap_or_default())
    }

    /// [`FacePipeline::analyze`] on several frames (e.g. one per camera), with the faces of all
    /// of them embedded in one embedder call (one batch when the model's batch dimension is
    /// dynamic) and, with `mosaic` on, two frames per detector call
    /// ([`Detector::detect_pair`]). One list of faces per frame, in order.
    pub fn analyze_many(
        &mut self,
        frames: &[&Frame],
        policy: EmbedPolicy,
    ) -> Result<Vec<Vec<AnalyzedFace>>, VisionError> {
        let shots: Vec<Shot<'_>> = frames.iter().map(|f| Shot::single(f)).collect();
        self.analyze_shots(&shots, policy)
    }

    /// [`FacePipeline::analyze_many`] on camera instants that may come with a main-stream frame
    /// ([`Shot::main`]): faces are found in the detect frame (a camera's small substream), and
    /// their quality, aligned crop and embedding come from the main frame at the same instant,
    /// the boxes and landmarks scaled by the ratio of the two frames' sizes. Boxes and
    /// landmarks come out in the coordinates of the frame the crops were cut from.
    pub fn analyze_shots(
        &mut self,
        shots: &[Shot<'_>],
        policy: EmbedPolicy,
    ) -> Result<Vec<Vec<AnalyzedFace>>, VisionError> {
        let mut dets: Vec<Vec<Detection>> = Vec::with_capacity(shots.len());
        let pairs = if self.mosaic { shots.len() / 2 } else { 0 };
        for k in 0..pairs {
            let [a, b] = self
                .detector
                .detect_pair(shots[2 * k].detect, shots[2 * k + 1].detect)?;
            dets.push(a);
            dets.push(b);
        }
        for shot in &shots[2 * pairs..] {
            dets.push(self.detector.detect(shot.detect)?);
        }
        let mut out = Vec::with_capacity(shots.len());
        for (shot, dets) in shots.iter().zip(&dets) {
            let (frame, sx, sy) = shot.crop_source();
            out.push(
                dets.iter()
                    .map(|d| self.assess_detection(frame, &scale_detection(d, sx, sy)))
                    .collect::<Vec<_>>(),
            );
        }
        let idx: Vec<(usize, usize)> = out
            .iter()
            .enumerate()
            .flat_map(|(k, faces)| {
                faces
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| match policy {
                        EmbedPolicy::All => true,
                        EmbedPolicy::Passing => f.observation.quality.passed(),
                        EmbedPolicy::None => false,
                    })
                    .map(move |(i, _)| (k, i))
            })
            .collect();
        if !idx.is_empty() {
            let crops: Vec<&Frame> = idx.iter().map(|&(k, i)| &out[k][i].aligned).collect();
            let embs = self.embedder.embed(&crops)?;
            for ((k, i), e) in idx.into_iter().zip(embs) {
                out[k][i].observation.embedding = Some(e);
            }
        }
        Ok(out)
    }

    /// The largest face (by box area) of a frame, embedded whatever its quality.
    pub fn largest_face(&mut self, frame: &Frame) -> Result<Option<AnalyzedFace>, VisionError> {
        let dets = self.detector.detect(frame)?;
        let Some(d) = dets
            .iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
        else {
            return Ok(None);
        };
        let mut face = self.assess_detection(frame, d);
        face.observation.embedding = self.embedder.embed(&[&face.aligned])?.pop();
        Ok(Some(face))
    }
}
