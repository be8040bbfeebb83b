//! `rollcall bench sightings SCENARIO`: every face the detector finds in a camera-sim scenario,
//! matched to the person the renderer drew there, with its quality and its similarity to every
//! enrolled student, for each way of cutting the aligned crop (issue 22: which face sizes the
//! embedder can still separate, whether a sharper resampling or a better landmark helps).
//!
//! Each rendered frame goes through the pipeline's detector; every detection is matched to a
//! truth face (box overlap ≥ 0.3), scored by the quality gate, and aligned once per
//! `--resample` kernel (plus once on the renderer's exact landmarks with `--truth-landmarks`),
//! each crop embedded and compared (cosine) with every student's enrollment embeddings (the
//! best over their photos, as the gallery's search keeps the best template per student; each
//! crop's `norm` is the embedder's raw output norm before normalisation). Truth
//! faces no detection matched are listed too (`"detected": false`). With `--out` every face is
//! one JSON line (embeddings included, for analyses of track templates); the summary printed
//! holds per face-size bin the detection rate and, per crop kind, the genuine (own student)
//! and impostor (best other student, and strangers' best) similarity quantiles.

use crate::cmd_sim;
use crate::cmd_vision::VisionOpts;
use anyhow::Context;
use rollcall_camera_sim::{Overrides, PersonKind, TruthFace};
use rollcall_domain::face::{BBox, Landmarks};
use rollcall_vision::align::Resample;
use rollcall_vision::decode::{decode_file, DecodeLimits};
use rollcall_vision::quality::{assess, laplacian_variance};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;

/// Options of `bench sightings`.
#[derive(Debug, Clone)]
pub struct SightingsOpts {
    pub scenario: PathBuf,
    pub overrides: Overrides,
    pub main_size: Option<(u32, u32)>,
    pub resample: Vec<Resample>,
    pub truth_landmarks: bool,
    pub out: Option<PathBuf>,
    /// Also embed every enrollment photo reduced so that its eyes are this many pixels apart
    /// (one set per distance, listed in the `--out` file's first line as `reduced`).
    pub reduced_enrollment: Vec<f32>,
}

/// `frame` reduced by `factor` (< 1) with a triangle (area-like) filter.
pub(crate) fn reduce(
    frame: &rollcall_domain::Frame,
    factor: f32,
) -> anyhow::Result<rollcall_domain::Frame> {
    let img = image::RgbImage::from_raw(frame.width(), frame.height(), frame.rgb().to_vec())
        .context("frame buffer")?;
    let (w, h) = (
        ((frame.width() as f32 * factor).round() as u32).max(1),
        ((frame.height() as f32 * factor).round() as u32).max(1),
    );
    let small = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
    Ok(rollcall_domain::Frame::from_rgb(w, h, small.into_raw())?)
}

/// Face-size bins by inter-ocular distance in the pixels the crop is cut from.
const IOD_BINS: [f32; 7] = [0.0, 6.0, 9.0, 12.0, 15.0, 20.0, 30.0];

fn iod_bin(iod: f32) -> String {
    let k = IOD_BINS.iter().rposition(|&b| iod >= b).unwrap_or(0);
    match IOD_BINS.get(k + 1) {
        Some(hi) => format!("{:02}-{:02}", IOD_BINS[k] as u32, *hi as u32),
        None => format!("{:02}+", IOD_BINS[k] as u32),
    }
}

pub(crate) fn iod(l: &Landmarks) -> f32 {
    let (dx, dy) = (l[1][0] - l[0][0], l[1][1] - l[0][1]);
    (dx * dx + dy * dy).sqrt()
}

fn scale_landmarks(l: &Landmarks, sx: f32, sy: f32) -> Landmarks {
    l.map(|p| [p[0] * sx, p[1] * sy])
}

fn scale_box(b: &BBox, sx: f32, sy: f32) -> BBox {
    BBox {
        x1: b.x1 * sx,
        y1: b.y1 * sy,
        x2: b.x2 * sx,
        y2: b.y2 * sy,
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn round4(x: f32) -> f64 {
    (x as f64 * 1e4).round() / 1e4
}

pub(crate) fn quantiles(v: &mut [f32]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| round4(v[((v.len() - 1) as f64 * p).round() as usize]);
    json!({"n": v.len(), "p05": q(0.05), "p25": q(0.25), "p50": q(0.5), "p75": q(0.75),
           "p95": q(0.95), "max": q(1.0)})
}

pub fn run(v: &VisionOpts, o: &SightingsOpts) -> anyhow::Result<Value> {
    let sim = cmd_sim::load_overridden(v, &o.scenario, &o.overrides)?;
    let mut p = v.open()?;
    let main = match o.main_size {
        Some((w, h)) => Some(sim.main_stream(w, h).context("the main stream")?),
        None => None,
    };
    // every student's enrollment embeddings (and of the photos reduced)
    let mut enrolled: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
    let mut reduced: BTreeMap<String, BTreeMap<String, Vec<Vec<f32>>>> = BTreeMap::new();
    for (student, photos) in sim.scenario.enrollment_photos() {
        for r in photos {
            let frame = decode_file(&r.path, &DecodeLimits::default())
                .with_context(|| format!("{}", r.path.display()))?;
            let Some(f) = p.largest_face(&frame)? else {
                continue;
            };
            if let Some(e) = &f.observation.embedding {
                enrolled
                    .entry(student.clone())
                    .or_default()
                    .push(e.vector.clone());
            }
            let lm = f.observation.landmarks;
            for &target in &o.reduced_enrollment {
                let factor = target / iod(&lm).max(1e-3);
                if !(factor > 0.0 && factor < 1.0) {
                    continue;
                }
                let small = reduce(&frame, factor)?;
                let crop =
                    p.align_landmarks(&small, &scale_landmarks(&lm, factor, factor), p.resample);
                let e = p.embedder.embed(&[&crop])?;
                if let Some(e) = e.into_iter().next() {
                    reduced
                        .entry(format!("{target}"))
                        .or_default()
                        .entry(student.clone())
                        .or_default()
                        .push(e.vector);
                }
            }
        }
    }
    let lesson_of: HashMap<u32, (Option<String>, u32)> = sim
        .plan()
        .arrivals
        .iter()
        .map(|a| (a.appearance, (a.lesson.clone(), a.pass)))
        .collect();
    let mut out = match &o.out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("{}", path.display()))?,
        )),
        None => None,
    };
    if let Some(w) = out.as_mut() {
        writeln!(w, "{}", json!({ "students": enrolled, "reduced": reduced }))?;
    }
    let mut kinds: Vec<String> = o.resample.iter().map(|r| r.to_string()).collect();
    if o.truth_landmarks {
        kinds.push("truth_landmarks".into());
    }
    // summary: per bin, truth faces and detected ones; per (kind, bin) genuine / impostor sims
    let mut seen: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut genuine: BTreeMap<(String, String), Vec<f32>> = BTreeMap::new();
    let mut other: BTreeMap<(String, String), Vec<f32>> = BTreeMap::new();
    let mut stranger: BTreeMap<(String, String), Vec<f32>> = BTreeMap::new();
    let (mut frames, mut faces, mut false_dets) = (0u64, 0u64, 0u64);
    let renderer = &sim.renderer;
    for cam in renderer.camera_ids() {
        for t in renderer.frame_times(&cam, Default::default())? {
            let (frame, truth) = renderer.render_frame(&cam, t)?;
            let (src, truth): (rollcall_domain::Frame, Vec<TruthFace>) = match &main {
                Some(m) => m.render_frame(&cam, t)?,
                None => (frame.clone(), truth),
            };
            frames += 1;
            let (sx, sy) = (
                src.width() as f32 / frame.width() as f32,
                src.height() as f32 / frame.height() as f32,
            );
            let dets = p.detector.detect(&frame)?;
            let mut matched = vec![false; truth.len()];
            for d in &dets {
                let bbox = scale_box(&d.bbox, sx, sy);
                let lm = scale_landmarks(&d.landmarks, sx, sy);
                let who = truth
                    .iter()
                    .enumerate()
                    .map(|(k, f)| (k, bbox.iou(&f.bbox)))
                    .filter(|(_, x)| *x >= 0.3)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(k, _)| k);
                if let Some(k) = who {
                    matched[k] = true;
                } else {
                    false_dets += 1;
                }
                faces += 1;
                let gate_crop = p.align_landmarks(&src, &lm, p.resample);
                let q = assess(
                    &p.quality,
                    src.width(),
                    src.height(),
                    &bbox,
                    d.score,
                    &lm,
                    Some(&gate_crop),
                );
                let mut crops = Vec::new();
                for r in &o.resample {
                    crops.push(p.align_landmarks(&src, &lm, *r));
                }
                if o.truth_landmarks {
                    match who {
                        Some(k) => {
                            crops.push(p.align_landmarks(&src, &truth[k].landmarks, p.resample))
                        }
                        None => crops.push(gate_crop.clone()),
                    }
                }
                let refs: Vec<&rollcall_domain::Frame> = crops.iter().collect();
                let embs = p.embedder.embed_with_norms(&refs)?;
                let person = who.map(|k| &truth[k]);
                let bin = iod_bin(q.inter_ocular);
                let mut per_kind = Map::new();
                for ((kind, crop), (e, norm)) in kinds.iter().zip(&crops).zip(&embs) {
                    let sims: BTreeMap<&String, f32> = enrolled
                        .iter()
                        .map(|(s, es)| {
                            let best = es
                                .iter()
                                .map(|x| dot(x, &e.vector))
                                .fold(f32::NEG_INFINITY, f32::max);
                            (s, best)
                        })
                        .collect();
                    if let Some(f) = person {
                        let key = (kind.clone(), bin.clone());
                        let best_other = sims
                            .iter()
                            .filter(|(s, _)| s.as_str() != f.id)
                            .map(|(_, v)| *v)
                            .fold(f32::NEG_INFINITY, f32::max);
                        match f.kind {
                            PersonKind::Student => {
                                if let Some(g) = sims.get(&f.id) {
                                    genuine.entry(key.clone()).or_default().push(*g);
                                }
                                if best_other.is_finite() {
                                    other.entry(key).or_default().push(best_other);
                                }
                            }
                            PersonKind::Stranger => {
                                if best_other.is_finite() {
                                    stranger.entry(key).or_default().push(best_other);
                                }
                            }
                        }
                    }
                    per_kind.insert(
                        kind.clone(),
                        json!({
                            "sharp": round4(laplacian_variance(crop)),
                            "norm": round4(*norm),
                            "sims": sims.iter().map(|(s, v)| ((*s).clone(), json!(round4(*v)))).collect::<Map<_, _>>(),
                            "emb": e.vector.iter().map(|x| round4(*x)).collect::<Vec<_>>(),
                        }),
                    );
                }
                if let Some(w) = out.as_mut() {
                    let (lesson, pass) = person
                        .and_then(|f| lesson_of.get(&f.appearance).cloned())
                        .unwrap_or((None, 0));
                    writeln!(
                        w,
                        "{}",
                        json!({
                            "t": t, "camera": cam, "detected": true,
                            "person": person.map(|f| f.id.clone()),
                            "kind": person.map(|f| f.kind),
                            "appearance": person.map(|f| f.appearance),
                            "lesson": lesson, "pass": pass,
                            "truth_iod": person.map(|f| round4(iod(&f.landmarks))),
                            "occlusion": person.map(|f| f.occlusion),
                            "box": bbox, "landmarks": lm,
                            "score": round4(d.score), "iod": round4(q.inter_ocular),
                            "sharp": round4(q.sharpness), "yaw": round4(q.yaw),
                            "pitch": round4(q.pitch), "overall": round4(q.overall),
                            "passed": q.passed(),
                            "reasons": q.reasons.iter().map(|r| r.code()).collect::<Vec<_>>(),
                            "v": per_kind,
                        })
                    )?;
                }
            }
            for (k, f) in truth.iter().enumerate() {
                let e = seen.entry(iod_bin(iod(&f.landmarks))).or_default();
                e.0 += 1;
                if matched[k] {
                    e.1 += 1;
                } else if let Some(w) = out.as_mut() {
                    let (lesson, pass) = lesson_of.get(&f.appearance).cloned().unwrap_or((None, 0));
                    writeln!(
                        w,
                        "{}",
                        json!({
                            "t": t, "camera": cam, "detected": false, "person": f.id,
                            "kind": f.kind, "appearance": f.appearance, "lesson": lesson,
                            "pass": pass, "truth_iod": round4(iod(&f.landmarks)),
                            "occlusion": f.occlusion,
                        })
                    )?;
                }
            }
        }
    }
    if let Some(mut w) = out.take() {
        w.flush()?;
    }
    let detection: Map<String, Value> = seen
        .iter()
        .map(|(b, (n, d))| {
            (
                b.clone(),
                json!({"truth_faces": n, "detected": d,
                       "rate": if *n > 0 { round4(*d as f32 / *n as f32) } else { 0.0 }}),
            )
        })
        .collect();
    let mut sims = Map::new();
    for kind in &kinds {
        let mut bins = Map::new();
        let all_bins: std::collections::BTreeSet<String> = genuine
            .keys()
            .chain(other.keys())
            .chain(stranger.keys())
            .filter(|(k, _)| k == kind)
            .map(|(_, b)| b.clone())
            .collect();
        for b in all_bins {
            let key = (kind.clone(), b.clone());
            bins.insert(
                b.clone(),
                json!({
                    "genuine": quantiles(genuine.get_mut(&key).map(|v| v.as_mut_slice()).unwrap_or(&mut [])),
                    "best_other_student": quantiles(other.get_mut(&key).map(|v| v.as_mut_slice()).unwrap_or(&mut [])),
                    "stranger_best": quantiles(stranger.get_mut(&key).map(|v| v.as_mut_slice()).unwrap_or(&mut [])),
                }),
            );
        }
        sims.insert(kind.clone(), Value::Object(bins));
    }
    Ok(json!({
        "scenario": o.scenario.display().to_string(),
        "seed": sim.scenario.seed(),
        "detector": v.detector, "det_size": v.det_size,
        "frames": frames, "faces": faces, "false_detections": false_dets,
        "detection_by_truth_iod": detection,
        "similarity_by_iod": sims,
    }))
}
