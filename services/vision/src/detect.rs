//! Face detectors: RetinaFace (prior-box decoding) and SCRFD (anchor-free, strides 8/16/32),
//! chosen by the manifest. Letterbox → ONNX → decode → score threshold → NMS → frame coordinates.

use crate::manifest::{self, DetectorFamily, DetectorSpec, ModelKind, ModelManifest};
use crate::preprocess::{letterbox_into, Letterbox};
use crate::runtime::{open_session, Provider, SessionOptions};
use crate::VisionError;
use ort::session::Session;
use ort::value::TensorRef;
use rollcall_domain::face::{BBox, Landmarks};
use rollcall_domain::Frame;
use std::path::Path;

/// One raw detection in frame coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub landmarks: Landmarks,
}

/// A RetinaFace prior, in input pixels.
#[derive(Debug, Clone, Copy)]
struct Prior {
    cx: f32,
    cy: f32,
    w: f32,
    h: f32,
}

pub struct Detector {
    manifest: ModelManifest,
    spec: DetectorSpec,
    session: Session,
    provider: Provider,
    /// Letterbox target size (fixed inputs: the file's size; dynamic: configurable).
    input_w: u32,
    input_h: u32,
    /// RetinaFace priors for (input_w, input_h), computed once.
    priors: Vec<Prior>,
    /// SCRFD anchor centres per stride for (input_w, input_h), computed once.
    centres: Vec<Vec<(f32, f32)>>,
    buf: Vec<f32>,
    /// One cell of a mosaic before it is copied into `buf`.
    scratch: Vec<f32>,
    /// Score threshold in use (the manifest's unless overridden).
    pub score_threshold: f32,
}

impl Detector {
    /// Opens the model named by `manifest` from `models_dir`, verifying checksum and shapes.
    /// `size` overrides the letterbox size of a dynamic-input model (e.g. 320 or 640).
    pub fn open(
        manifest: &ModelManifest,
        models_dir: &Path,
        size: Option<u32>,
        opts: &SessionOptions,
    ) -> Result<Self, VisionError> {
        if manifest.kind != ModelKind::Detector {
            return Err(VisionError::Manifest {
                path: manifest.id.clone(),
                reason: "not a detector".into(),
            });
        }
        let spec = manifest
            .detector
            .clone()
            .expect("validated by ModelManifest::parse");
        let path = manifest::verified_model_path(manifest, models_dir)?;
        let (session, provider) = open_session(&manifest.tag(), &path, opts)?;
        let outputs: Vec<&str> = match spec.family {
            DetectorFamily::Retinaface => {
                let r = spec.retinaface.as_ref().expect("validated");
                vec![r.boxes.as_str(), r.scores.as_str(), r.landmarks.as_str()]
            }
            DetectorFamily::Scrfd => {
                let s = spec.scrfd.as_ref().expect("validated");
                s.scores
                    .iter()
                    .chain(&s.boxes)
                    .chain(&s.keypoints)
                    .map(|x| x.as_str())
                    .collect()
            }
        };
        manifest::check_session(manifest, &session, &outputs)?;
        let (mut input_w, mut input_h) = (manifest.input.width, manifest.input.height);
        if let Some(s) = size {
            if !manifest.input.dynamic {
                if s != input_w || s != input_h {
                    return Err(VisionError::InvalidInput(format!(
                        "{} has a fixed {}x{} input; it cannot run at {s}",
                        manifest.tag(),
                        input_w,
                        input_h
                    )));
                }
            } else {
                let m = manifest.input.multiple_of;
                if s == 0 || s % m != 0 {
                    return Err(VisionError::InvalidInput(format!(
                        "detector size {s} must be a positive multiple of {m}"
                    )));
                }
                input_w = s;
                input_h = s;
            }
        }
        let mut det = Detector {
            manifest: manifest.clone(),
            score_threshold: spec.score_threshold,
            spec,
            session,
            provider,
            input_w,
            input_h,
            priors: Vec::new(),
            centres: Vec::new(),
            buf: Vec::new(),
            scratch: Vec::new(),
        };
        det.build_anchors();
        Ok(det)
    }

    /// Where the model runs (the CPU unless `--cuda` registered the CUDA provider).
    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    pub fn input_size(&self) -> (u32, u32) {
        (self.input_w, self.input_h)
    }

    fn build_anchors(&mut self) {
        let (w, h) = (self.input_w as f32, self.input_h as f32);
        match self.spec.family {
            DetectorFamily::Retinaface => {
                let r = self.spec.retinaface.as_ref().expect("validated");
                for (k, &step) in r.steps.iter().enumerate() {
                    let fh = (h / step as f32).ceil() as usize;
                    let fw = (w / step as f32).ceil() as usize;
                    for i in 0..fh {
                        for j in 0..fw {
                            for &ms in &r.min_sizes[k] {
                                self.priors.push(Prior {
                                    cx: (j as f32 + 0.5) * step as f32,
                                    cy: (i as f32 + 0.5) * step as f32,
                                    w: ms,
                                    h: ms,
                                });
                            }
                        }
                    }
                }
            }
            DetectorFamily::Scrfd => {
                let s = self.spec.scrfd.as_ref().expect("validated");
                for &stride in &s.strides {
                    let fh = (h as u32).div_ceil(stride) as usize;
                    let fw = (w as u32).div_ceil(stride) as usize;
                    let mut v = Vec::with_capacity(fh * fw * s.anchors_per_cell as usize);
                    for y in 0..fh {
                        for x in 0..fw {
                            for _ in 0..s.anchors_per_cell {
                                v.push(((x as u32 * stride) as f32, (y as u32 * stride) as f32));
                            }
                        }
                    }
                    self.centres.push(v);
                }
            }
        }
    }

    /// Letterboxes the frame into the model input (exposed for benchmarks).
    pub fn preprocess(&mut self, frame: &Frame) -> Letterbox {
        letterbox_into(
            frame,
            &self.manifest.input,
            self.input_w,
            self.input_h,
            &mut self.buf,
        )
    }

    /// Detects faces, highest score first, in frame coordinates.
    pub fn detect(&mut self, frame: &Frame) -> Result<Vec<Detection>, VisionError> {
        if frame.is_empty() {
            return Err(VisionError::EmptyImage);
        }
        let lb = self.preprocess(frame);
        let dets = self.infer()?;
        let mut kept = nms(dets, self.spec.nms_iou, self.spec.max_faces);
        for d in &mut kept {
            map_back(d, &lb);
        }
        Ok(kept)
    }

    /// Detects faces in two frames with one model call: both are scaled into one input, one
    /// above the other (side by side for portrait frames), with a gap of [`MOSAIC_GAP`] input
    /// pixels between them. Each detection belongs to the cell holding its box centre (a
    /// detection centred in the gap is dropped), is suppressed only against detections of its
    /// own cell, and is mapped back into its own frame. On a fixed-size detector this halves
    /// the detection cost per frame, for faces drawn about 13% smaller than in a frame of its
    /// own (a 1280×720 frame at scale 0.433 instead of 0.5 in a 640×640 input).
    pub fn detect_pair(
        &mut self,
        a: &Frame,
        b: &Frame,
    ) -> Result<[Vec<Detection>; 2], VisionError> {
        if a.is_empty() || b.is_empty() {
            return Err(VisionError::EmptyImage);
        }
        let cells = mosaic_cells(self.input_w, self.input_h, [a, b]);
        let plane = (self.input_w * self.input_h) as usize;
        self.buf.clear();
        self.buf.resize(3 * plane, 0.0);
        let spec = &self.manifest.input;
        let (iw, buf, tmp) = (self.input_w, &mut self.buf, &mut self.scratch);
        let lbs = [
            letterbox_cell(a, spec, iw, &cells[0], tmp, buf),
            letterbox_cell(b, spec, iw, &cells[1], tmp, buf),
        ];
        let dets = self.infer()?;
        let mut split: [Vec<Detection>; 2] = [Vec::new(), Vec::new()];
        for d in dets {
            let (cx, cy) = ((d.bbox.x1 + d.bbox.x2) / 2.0, (d.bbox.y1 + d.bbox.y2) / 2.0);
            if let Some(k) = (0..2).find(|&k| cells[k].contains(cx, cy)) {
                split[k].push(d);
            }
        }
        let mut out: [Vec<Detection>; 2] = [Vec::new(), Vec::new()];
        for (k, dets) in split.into_iter().enumerate() {
            let mut kept = nms(dets, self.spec.nms_iou, self.spec.max_faces);
            for d in &mut kept {
                map_back(d, &lbs[k]);
            }
            out[k] = kept;
        }
        Ok(out)
    }

    /// Runs the model on the prepared input (`self.buf`) and decodes every candidate above the
    /// score threshold, in input coordinates (before NMS).
    fn infer(&mut self) -> Result<Vec<Detection>, VisionError> {
        let shape = [1usize, 3, self.input_h as usize, self.input_w as usize];
        let tag = self.manifest.tag();
        let ierr = |e: ort::Error| VisionError::Inference {
            model: tag.clone(),
            message: e.to_string(),
        };
        let input = TensorRef::from_array_view((shape, self.buf.as_slice())).map_err(ierr)?;
        let outputs = self
            .session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])
            .map_err(ierr)?;
        let thr = self.score_threshold;
        let mut dets = Vec::new();
        let get = |name: &str| -> Result<&[f32], VisionError> {
            let v = outputs
                .get(name)
                .ok_or_else(|| VisionError::ShapeMismatch {
                    model: tag.clone(),
                    reason: format!("missing output {name}"),
                })?;
            v.try_extract_tensor::<f32>().map(|(_, d)| d).map_err(ierr)
        };
        match self.spec.family {
            DetectorFamily::Retinaface => {
                let r = self.spec.retinaface.as_ref().expect("validated");
                let (loc, conf, landm) = (get(&r.boxes)?, get(&r.scores)?, get(&r.landmarks)?);
                let n = self.priors.len();
                if loc.len() != n * 4 || conf.len() != n * 2 || landm.len() != n * 10 {
                    return Err(VisionError::ShapeMismatch {
                        model: tag.clone(),
                        reason: format!("expected {n} priors, got {} box values", loc.len()),
                    });
                }
                let [v0, v1] = r.variances;
                for (i, p) in self.priors.iter().enumerate() {
                    let score = conf[i * 2 + 1];
                    if score < thr {
                        continue;
                    }
                    let l = &loc[i * 4..i * 4 + 4];
                    let cx = p.cx + l[0] * v0 * p.w;
                    let cy = p.cy + l[1] * v0 * p.h;
                    let w = p.w * (l[2] * v1).exp();
                    let h = p.h * (l[3] * v1).exp();
                    let lm = &landm[i * 10..i * 10 + 10];
                    let mut landmarks = [[0f32; 2]; 5];
                    for (k, pt) in landmarks.iter_mut().enumerate() {
                        *pt = [p.cx + lm[2 * k] * v0 * p.w, p.cy + lm[2 * k + 1] * v0 * p.h];
                    }
                    dets.push(raw(
                        cx - w / 2.0,
                        cy - h / 2.0,
                        cx + w / 2.0,
                        cy + h / 2.0,
                        score,
                        landmarks,
                    ));
                }
            }
            DetectorFamily::Scrfd => {
                let s = self.spec.scrfd.as_ref().expect("validated");
                for (k, &stride) in s.strides.iter().enumerate() {
                    let (scores, boxes, kps) =
                        (get(&s.scores[k])?, get(&s.boxes[k])?, get(&s.keypoints[k])?);
                    let centres = &self.centres[k];
                    let n = centres.len();
                    if scores.len() != n || boxes.len() != n * 4 || kps.len() != n * 10 {
                        return Err(VisionError::ShapeMismatch {
                            model: tag.clone(),
                            reason: format!(
                                "stride {stride}: expected {n} anchors, got {} scores",
                                scores.len()
                            ),
                        });
                    }
                    let st = stride as f32;
                    for (i, &(cx, cy)) in centres.iter().enumerate() {
                        let score = scores[i];
                        if score < thr {
                            continue;
                        }
                        let b = &boxes[i * 4..i * 4 + 4];
                        let kp = &kps[i * 10..i * 10 + 10];
                        let mut landmarks = [[0f32; 2]; 5];
                        for (j, pt) in landmarks.iter_mut().enumerate() {
                            *pt = [cx + kp[2 * j] * st, cy + kp[2 * j + 1] * st];
                        }
                        dets.push(raw(
                            cx - b[0] * st,
                            cy - b[1] * st,
                            cx + b[2] * st,
                            cy + b[3] * st,
                            score,
                            landmarks,
                        ));
                    }
                }
            }
        }
        drop(outputs);
        Ok(dets)
    }
}

/// Input pixels of padding between the two frames of a [`Detector::detect_pair`] input (each
/// detection is assigned to a frame by its box centre, and suppressed only within its frame).
pub const MOSAIC_GAP: u32 = 16;

/// Where a frame is drawn inside a mosaic input.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    x0: u32,
    y0: u32,
    w: u32,
    h: u32,
}

impl Cell {
    fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x0 as f32
            && y >= self.y0 as f32
            && x < (self.x0 + self.w) as f32
            && y < (self.y0 + self.h) as f32
    }
}

/// The two cells of a pair: stacked when both frames are landscape (or square), else side by
/// side; whichever keeps the larger common scale.
fn mosaic_cells(iw: u32, ih: u32, frames: [&Frame; 2]) -> [Cell; 2] {
    let fit = |cw: u32, ch: u32| {
        frames
            .iter()
            .map(|f| (cw as f32 / f.width() as f32).min(ch as f32 / f.height() as f32))
            .fold(f32::INFINITY, f32::min)
    };
    let ch = ih.saturating_sub(MOSAIC_GAP) / 2;
    let cw = iw.saturating_sub(MOSAIC_GAP) / 2;
    if fit(iw, ch) >= fit(cw, ih) {
        [
            Cell {
                x0: 0,
                y0: 0,
                w: iw,
                h: ch,
            },
            Cell {
                x0: 0,
                y0: ch + MOSAIC_GAP,
                w: iw,
                h: ch,
            },
        ]
    } else {
        [
            Cell {
                x0: 0,
                y0: 0,
                w: cw,
                h: ih,
            },
            Cell {
                x0: cw + MOSAIC_GAP,
                y0: 0,
                w: cw,
                h: ih,
            },
        ]
    }
}

/// Draws `frame` (aspect kept, bilinear) at the top-left of `cell` in the CHW input `out` of
/// width `iw` (already sized and zeroed: the padding). Returns the mapping back to the frame.
fn letterbox_cell(
    frame: &Frame,
    spec: &crate::manifest::InputSpec,
    iw: u32,
    cell: &Cell,
    tmp: &mut Vec<f32>,
    out: &mut [f32],
) -> Letterbox {
    let lb = letterbox_into(frame, spec, cell.w, cell.h, tmp);
    let (cw, ch) = (cell.w as usize, cell.h as usize);
    let plane = out.len() / 3;
    let iw = iw as usize;
    for c in 0..3 {
        for y in 0..ch {
            let src = &tmp[c * cw * ch + y * cw..c * cw * ch + (y + 1) * cw];
            let o = c * plane + (cell.y0 as usize + y) * iw + cell.x0 as usize;
            out[o..o + cw].copy_from_slice(src);
        }
    }
    Letterbox {
        scale: lb.scale,
        input_w: lb.input_w,
        input_h: lb.input_h,
        x0: cell.x0 as f32,
        y0: cell.y0 as f32,
    }
}

fn raw(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, landmarks: Landmarks) -> Detection {
    Detection {
        bbox: BBox { x1, y1, x2, y2 },
        score,
        landmarks,
    }
}

fn map_back(d: &mut Detection, lb: &Letterbox) {
    let (x1, y1) = lb.to_frame(d.bbox.x1, d.bbox.y1);
    let (x2, y2) = lb.to_frame(d.bbox.x2, d.bbox.y2);
    d.bbox = BBox { x1, y1, x2, y2 };
    for p in &mut d.landmarks {
        let (x, y) = lb.to_frame(p[0], p[1]);
        *p = [x, y];
    }
}

/// Greedy non-maximum suppression: highest score first, drop boxes overlapping a kept one by
/// more than `iou`. Returns at most `max` detections.
pub fn nms(mut dets: Vec<Detection>, iou: f32, max: usize) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in dets {
        if kept.len() >= max {
            break;
        }
        if kept.iter().all(|k| k.bbox.iou(&d.bbox) <= iou) {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, s: f32) -> Detection {
        raw(x, 0.0, x + 10.0, 10.0, s, [[0.0; 2]; 5])
    }

    #[test]
    fn nms_keeps_best_of_overlaps() {
        let out = nms(vec![det(0.0, 0.8), det(1.0, 0.9), det(50.0, 0.7)], 0.4, 10);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[1].score, 0.7);
        assert_eq!(nms(vec![det(0.0, 0.8), det(50.0, 0.7)], 0.4, 1).len(), 1);
    }
}

#[cfg(test)]
mod mosaic_tests {
    use super::*;

    fn frame(w: u32, h: u32) -> Frame {
        Frame::from_rgb(w, h, vec![0; (w * h * 3) as usize]).unwrap()
    }

    #[test]
    fn landscape_frames_stack_and_portrait_frames_sit_side_by_side() {
        let (a, b) = (frame(1280, 720), frame(1280, 720));
        let c = mosaic_cells(640, 640, [&a, &b]);
        assert_eq!(
            c[0],
            Cell {
                x0: 0,
                y0: 0,
                w: 640,
                h: 312
            }
        );
        assert_eq!(
            c[1],
            Cell {
                x0: 0,
                y0: 328,
                w: 640,
                h: 312
            }
        );
        let (p, q) = (frame(720, 1280), frame(720, 1280));
        let c = mosaic_cells(640, 640, [&p, &q]);
        assert_eq!(
            c[0],
            Cell {
                x0: 0,
                y0: 0,
                w: 312,
                h: 640
            }
        );
        assert_eq!(
            c[1],
            Cell {
                x0: 328,
                y0: 0,
                w: 312,
                h: 640
            }
        );
        // the cells never overlap, and a point in the gap belongs to neither
        assert!(!c[0].contains(320.0, 10.0) && !c[1].contains(320.0, 10.0));
    }

    #[test]
    fn a_cell_maps_back_into_its_own_frame() {
        let spec = crate::manifest::InputSpec {
            name: "x".into(),
            width: 8,
            height: 8,
            dynamic: false,
            multiple_of: 1,
            channel_order: crate::manifest::ChannelOrder::Rgb,
            mean: [0.0; 3],
            scale: [1.0; 3],
        };
        // a 4x2 red frame into the lower cell (y0 = 4, 8x4) of an 8x8 input: scale 2
        let f = Frame::from_rgb(4, 2, [255u8, 0, 0].repeat(8)).unwrap();
        let cell = Cell {
            x0: 0,
            y0: 4,
            w: 8,
            h: 4,
        };
        let mut out = vec![0.0; 3 * 64];
        let mut tmp = Vec::new();
        let lb = letterbox_cell(&f, &spec, 8, &cell, &mut tmp, &mut out);
        assert_eq!(lb.scale, 2.0);
        assert_eq!(out[3 * 8], 0.0, "upper cell untouched");
        assert_eq!(out[4 * 8], 255.0, "red plane, first row of the lower cell");
        assert_eq!(out[64 + 4 * 8], 0.0, "green plane");
        assert_eq!(lb.to_frame(8.0, 8.0), (4.0, 2.0));
        assert_eq!(lb.to_frame(0.0, 4.0), (0.0, 0.0));
    }
}
