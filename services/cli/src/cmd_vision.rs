//! `rollcall detect | embed | verify | eval-pairs`: the vision pipeline on still images.

use anyhow::{anyhow, bail, Context};
use rollcall_domain::face::{dot, FaceObservation};
use rollcall_domain::Frame;
use rollcall_vision::decode::{decode_file, encode_png, DecodeLimits};
use rollcall_vision::pipeline::EmbedPolicy;
use rollcall_vision::quality::QualityConfig;
use rollcall_vision::runtime::SessionOptions;
use rollcall_vision::{FacePipeline, PipelineConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Which models to run, from where, on what.
#[derive(Debug, Clone, clap::Args)]
pub struct VisionOpts {
    /// Directory holding the ONNX files (default: ../shared/models from the project root).
    #[arg(long, env = "ROLLCALL_MODELS_DIR", value_name = "DIR", global = true)]
    pub models: Option<PathBuf>,
    /// Extra model manifests (TOML) to add to the built-in ones, e.g. an ArcFace manifest.
    #[arg(
        long,
        env = "ROLLCALL_MANIFESTS_DIR",
        value_name = "DIR",
        global = true
    )]
    pub manifests: Option<PathBuf>,
    /// Detector manifest id.
    #[arg(
        long,
        env = "ROLLCALL_DETECTOR",
        default_value = "retinaface_mnet025",
        global = true
    )]
    pub detector: String,
    /// Embedder manifest id.
    #[arg(
        long,
        env = "ROLLCALL_EMBEDDER",
        default_value = "mobilefacenet_128",
        global = true
    )]
    pub embedder: String,
    /// Letterbox size for detectors with a dynamic input (e.g. 320 or 640).
    #[arg(long, value_name = "PX", global = true)]
    pub det_size: Option<u32>,
    /// ONNX Runtime intra-op threads per session.
    #[arg(long, default_value_t = 1, global = true)]
    pub threads: usize,
    /// Use the CUDA execution provider (needs a build with the `cuda` feature).
    #[arg(long, global = true)]
    pub cuda: bool,
    /// Detect one frame per detector call in the inference pool, instead of two frames of
    /// different cameras drawn into one input when both are waiting (`serve`, `bench pipeline`).
    #[arg(long, env = "ROLLCALL_NO_MOSAIC", global = true)]
    pub no_mosaic: bool,
    /// How aligned face crops sample the frame: bilinear, bicubic or lanczos3.
    #[arg(
        long,
        env = "ROLLCALL_RESAMPLE",
        default_value = "bilinear",
        global = true
    )]
    pub resample: rollcall_vision::align::Resample,
    /// How much of a camera's mean embedding is taken off a track's template before it is
    /// searched, in [0, 1); 0 turns it off (issue 22: small, blurred faces of one camera share
    /// a common component that makes every student look alike; BENCHMARKS.md, "Small faces").
    #[arg(
        long,
        env = "ROLLCALL_CAMERA_MEAN_WEIGHT",
        default_value_t = 0.3,
        global = true
    )]
    pub camera_mean_weight: f32,
}

impl VisionOpts {
    pub fn config(&self, quality: QualityConfig) -> PipelineConfig {
        PipelineConfig {
            detector: self.detector.clone(),
            embedder: self.embedder.clone(),
            detector_size: self.det_size,
            models_dir: self.models.clone(),
            manifest_dir: self.manifests.clone(),
            quality,
            session: SessionOptions {
                intra_threads: self.threads,
                cuda: self.cuda,
            },
            mosaic: !self.no_mosaic,
            resample: self.resample,
        }
    }

    /// The tracker settings of every camera: the defaults with `--camera-mean-weight`
    /// (refused when out of range).
    pub fn tracker_config(&self) -> anyhow::Result<rollcall_domain::matcher::TrackerConfig> {
        let c = rollcall_domain::matcher::TrackerConfig {
            camera_mean_weight: self.camera_mean_weight,
            ..Default::default()
        };
        c.validate().context("--camera-mean-weight")?;
        Ok(c)
    }

    pub fn open(&self) -> anyhow::Result<FacePipeline> {
        FacePipeline::open(&self.config(QualityConfig::default())).context("opening the models")
    }
}

pub fn load(path: &Path) -> anyhow::Result<Frame> {
    decode_file(path, &DecodeLimits::default()).with_context(|| format!("{}", path.display()))
}

/// The JSON of one face: box, score, landmarks, quality (with `passed` and reason codes).
pub fn face_json(o: &FaceObservation) -> Value {
    let mut q = serde_json::to_value(&o.quality).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut q {
        m.insert("passed".into(), json!(o.quality.passed()));
    }
    json!({
        "box": [o.bbox.x1, o.bbox.y1, o.bbox.x2, o.bbox.y2],
        "score": o.quality.score,
        "landmarks": o.landmarks,
        "quality": q,
    })
}

pub fn detect(v: &VisionOpts, image: &Path, annotate: Option<&Path>) -> anyhow::Result<Value> {
    let mut p = v.open()?;
    let frame = load(image)?;
    let faces = p.analyze(&frame, EmbedPolicy::None)?;
    if let Some(out) = annotate {
        let mut img = frame.clone();
        for f in &faces {
            let colour = if f.observation.quality.passed() {
                [0, 220, 0]
            } else {
                [230, 40, 40]
            };
            draw_box(&mut img, &f.observation, colour);
        }
        std::fs::write(out, encode_png(&img)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(json!({
        "faces": faces.iter().map(|f| face_json(&f.observation)).collect::<Vec<_>>()
    }))
}

/// Draws a 2-pixel rectangle and the 5 landmarks onto an RGB frame.
fn draw_box(img: &mut Frame, o: &FaceObservation, c: [u8; 3]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let mut px = img.rgb().to_vec();
    let mut put = |x: i64, y: i64, c: [u8; 3]| {
        if x >= 0 && y >= 0 && x < w && y < h {
            let i = ((y * w + x) * 3) as usize;
            px[i..i + 3].copy_from_slice(&c);
        }
    };
    let b = o.bbox;
    let (x1, y1, x2, y2) = (b.x1 as i64, b.y1 as i64, b.x2 as i64, b.y2 as i64);
    for t in 0..2 {
        for x in x1..=x2 {
            put(x, y1 + t, c);
            put(x, y2 - t, c);
        }
        for y in y1..=y2 {
            put(x1 + t, y, c);
            put(x2 - t, y, c);
        }
    }
    for [lx, ly] in o.landmarks {
        for dy in -2..=2 {
            for dx in -2..=2 {
                put(lx as i64 + dx, ly as i64 + dy, [255, 200, 0]);
            }
        }
    }
    *img = Frame::from_rgb(img.width(), img.height(), px).expect("same size");
}

pub fn embed(v: &VisionOpts, image: &Path) -> anyhow::Result<Value> {
    let mut p = v.open()?;
    let frame = load(image)?;
    let faces = p.analyze(&frame, EmbedPolicy::All)?;
    let m = p.embedder.manifest();
    Ok(json!({
        "model": m.id,
        "model_version": m.version,
        "faces": faces.iter().map(|f| {
            let mut j = face_json(&f.observation);
            j["embedding"] = json!(f.observation.embedding.as_ref().map(|e| &e.vector));
            j
        }).collect::<Vec<_>>()
    }))
}

/// The embedding of the largest face of an image, or `None` when it has no face.
fn largest_embedding(p: &mut FacePipeline, path: &Path) -> anyhow::Result<Option<Vec<f32>>> {
    let frame = load(path)?;
    Ok(p.largest_face(&frame)?
        .and_then(|f| f.observation.embedding)
        .map(|e| e.vector))
}

pub fn verify(v: &VisionOpts, a: &Path, b: &Path, threshold: Option<f32>) -> anyhow::Result<Value> {
    let mut p = v.open()?;
    let t = threshold.unwrap_or(p.thresholds().verify);
    let ea = largest_embedding(&mut p, a)?.ok_or_else(|| anyhow!("no face in {}", a.display()))?;
    let eb = largest_embedding(&mut p, b)?.ok_or_else(|| anyhow!("no face in {}", b.display()))?;
    let s = dot(&ea, &eb);
    Ok(json!({"similarity": s, "same": s >= t, "threshold": t}))
}

/// Indexes every file under `root` by file name (and by relative path), to resolve pair lists
/// that name files either way.
struct FileIndex {
    root: PathBuf,
    by_name: HashMap<String, Vec<PathBuf>>,
}

impl FileIndex {
    fn build(root: &Path) -> anyhow::Result<Self> {
        if !root.is_dir() {
            bail!("--root {} is not a directory", root.display());
        }
        let mut by_name: HashMap<String, Vec<PathBuf>> = HashMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
                let path = e?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(n) = path.file_name() {
                    by_name
                        .entry(n.to_string_lossy().into_owned())
                        .or_default()
                        .push(path);
                }
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            by_name,
        })
    }

    fn resolve(&self, name: &str) -> Result<PathBuf, String> {
        let name = name.trim();
        let direct = self.root.join(name);
        if !name.is_empty() && direct.is_file() {
            return Ok(direct);
        }
        let base = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match self.by_name.get(&base).map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            Some(many) if !many.is_empty() => {
                // Several files share the name: pick the one whose path ends with the given one.
                let want: Vec<_> = Path::new(name).components().collect();
                let matching: Vec<&PathBuf> = many
                    .iter()
                    .filter(|p| {
                        let have: Vec<_> = p.components().collect();
                        have.ends_with(&want)
                    })
                    .collect();
                match matching.as_slice() {
                    [one] => Ok((*one).clone()),
                    _ => Err(format!(
                        "{name}: {} files share this name; name it with its folder",
                        many.len()
                    )),
                }
            }
            _ => Err(format!("{name}: not found under {}", self.root.display())),
        }
    }
}

/// One labelled pair as read from the CSV.
struct Pair {
    x: String,
    y: String,
    same: bool,
}

fn read_pairs(csv_path: &Path) -> anyhow::Result<Vec<Pair>> {
    let mut rd = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(csv_path)
        .with_context(|| format!("{}", csv_path.display()))?;
    let headers = rd.headers()?.clone();
    let col = |n: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(n))
            .ok_or_else(|| anyhow!("{}: no `{n}` column", csv_path.display()))
    };
    let (cx, cy, cd) = (col("file_x")?, col("file_y")?, col("decision")?);
    let mut pairs = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", csv_path.display()))?;
        let get = |c: usize| rec.get(c).unwrap_or("").to_string();
        let same = match get(cd).to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" | "same" => true,
            "no" | "false" | "0" | "different" => false,
            other => bail!(
                "{}: line {line}: decision `{other}` is neither Yes nor No",
                csv_path.display()
            ),
        };
        pairs.push(Pair {
            x: get(cx),
            y: get(cy),
            same,
        });
    }
    Ok(pairs)
}

/// TAR at the smallest threshold whose FAR is at most `far` (scores of impostor pairs).
pub(crate) fn tar_at_far(genuine: &[f32], impostor: &[f32], far: f64) -> Option<f64> {
    if genuine.is_empty() || impostor.is_empty() {
        return None;
    }
    let mut imp = impostor.to_vec();
    imp.sort_by(|a, b| b.total_cmp(a));
    // Allowed number of impostors at or above the threshold.
    let k = (far * imp.len() as f64).floor() as usize;
    let t = if k >= imp.len() {
        f32::MIN
    } else {
        // Strictly above the (k+1)-th highest impostor score.
        imp[k].next_up()
    };
    Some(genuine.iter().filter(|&&g| g >= t).count() as f64 / genuine.len() as f64)
}

pub fn eval_pairs(
    v: &VisionOpts,
    csv_path: &Path,
    root: &Path,
    threshold: Option<f32>,
) -> anyhow::Result<Value> {
    let pairs = read_pairs(csv_path)?;
    let index = FileIndex::build(root)?;
    let mut p = v.open()?;
    let t = threshold.unwrap_or(p.thresholds().verify);
    // Each file is embedded once, however many pairs name it.
    let mut cache: HashMap<PathBuf, Result<Option<Vec<f32>>, String>> = HashMap::new();
    let mut embed = |name: &str, p: &mut FacePipeline| -> Result<Option<Vec<f32>>, String> {
        let path = index.resolve(name)?;
        cache
            .entry(path.clone())
            .or_insert_with(|| largest_embedding(p, &path).map_err(|e| format!("{e:#}")))
            .clone()
    };
    let (mut correct, mut no_face, mut unreadable) = (0usize, 0usize, 0usize);
    let (mut fa, mut fr) = (0usize, 0usize);
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    let mut problems = Vec::new();
    for pair in &pairs {
        let (ex, ey) = (embed(&pair.x, &mut p), embed(&pair.y, &mut p));
        let predicted_same = match (ex, ey) {
            (Ok(Some(a)), Ok(Some(b))) => {
                let s = dot(&a, &b);
                if pair.same {
                    genuine.push(s)
                } else {
                    impostor.push(s)
                }
                s >= t
            }
            (Err(e), _) | (_, Err(e)) => {
                unreadable += 1;
                if problems.len() < 20 {
                    problems.push(e);
                }
                false
            }
            _ => {
                // No face found in one of the images: the pair cannot be verified as the same
                // person, which is what the product does with such a photo.
                no_face += 1;
                false
            }
        };
        if predicted_same == pair.same {
            correct += 1;
        } else if predicted_same {
            fa += 1;
        } else {
            fr += 1;
        }
    }
    let n = pairs.len();
    Ok(json!({
        "pairs": n,
        "accuracy": if n == 0 { 0.0 } else { correct as f64 / n as f64 },
        "threshold": t,
        "no_face": no_face,
        "unreadable": unreadable,
        "false_accepts": fa,
        "false_rejects": fr,
        "tar_at_far": {
            "0.1": tar_at_far(&genuine, &impostor, 0.1),
            "0.01": tar_at_far(&genuine, &impostor, 0.01),
            "0.001": tar_at_far(&genuine, &impostor, 0.001),
        },
        "model": p.embedder.manifest().tag(),
        "detector": p.detector.manifest().tag(),
        "problems": problems,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_at_far_counts_genuine_above_the_impostor_quantile() {
        let imp: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        // FAR 0.01 allows one impostor (0.99) at or above the threshold: t just above 0.98.
        let gen = [0.985, 0.97, 0.995, 0.5];
        assert_eq!(tar_at_far(&gen, &imp, 0.01), Some(0.5));
        assert_eq!(tar_at_far(&gen, &imp, 0.0), Some(0.25));
        assert_eq!(tar_at_far(&[], &imp, 0.01), None);
    }

    #[test]
    fn pairs_csv_is_read_by_header_and_rejects_bad_decisions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pairs.csv");
        std::fs::write(
            &p,
            "id,file_y,file_x,decision\n1,b.jpg,a.jpg,Yes\n2,c.jpg,a.jpg,no\n",
        )
        .unwrap();
        let pairs = read_pairs(&p).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(
            (pairs[0].x.as_str(), pairs[0].y.as_str()),
            ("a.jpg", "b.jpg")
        );
        assert!(pairs[0].same && !pairs[1].same);
        std::fs::write(&p, "file_x,file_y,decision\na,b,maybe\n").unwrap();
        let e = read_pairs(&p).err().unwrap().to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::write(&p, "file_x,decision\na,Yes\n").unwrap();
        assert!(read_pairs(&p).is_err());
    }

    #[test]
    fn files_resolve_by_name_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("p1")).unwrap();
        std::fs::create_dir_all(dir.path().join("p2")).unwrap();
        std::fs::write(dir.path().join("p1/a.jpg"), "x").unwrap();
        std::fs::write(dir.path().join("p1/same.jpg"), "x").unwrap();
        std::fs::write(dir.path().join("p2/same.jpg"), "x").unwrap();
        let ix = FileIndex::build(dir.path()).unwrap();
        assert_eq!(ix.resolve("a.jpg").unwrap(), dir.path().join("p1/a.jpg"));
        assert_eq!(
            ix.resolve("x/y/a.jpg").unwrap(),
            dir.path().join("p1/a.jpg")
        );
        assert_eq!(
            ix.resolve("p2/same.jpg").unwrap(),
            dir.path().join("p2/same.jpg")
        );
        assert!(ix.resolve("same.jpg").is_err());
        assert!(ix.resolve("nope.jpg").is_err());
    }
}
