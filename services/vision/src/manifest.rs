//! Model manifests: everything the pipeline must know about a model file, declared in TOML.
//!
//! The project's manifests live in `models/*.toml` and are also compiled into the binary, so a
//! fresh install works; extra manifests (ArcFace, SFace, ...) are picked up from a manifest
//! directory without code changes. The loader verifies the file's sha256 and the declared
//! input/output names and shapes against the ONNX session and refuses a mismatch.

use crate::VisionError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Manifests shipped with rollcall (the files in `models/`).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "retinaface_mnet025.toml",
        include_str!("../../../models/retinaface_mnet025.toml"),
    ),
    (
        "scrfd_2.5g_kps.toml",
        include_str!("../../../models/scrfd_2.5g_kps.toml"),
    ),
    (
        "mobilefacenet_128.toml",
        include_str!("../../../models/mobilefacenet_128.toml"),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Detector,
    Embedder,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    /// Fixed input width, or for dynamic inputs the width frames are letterboxed to.
    pub width: u32,
    pub height: u32,
    /// The file accepts any spatial size (a multiple of `multiple_of`).
    #[serde(default)]
    pub dynamic: bool,
    #[serde(default = "one")]
    pub multiple_of: u32,
    pub channel_order: ChannelOrder,
    /// Per channel, in the model's channel order: value = (pixel - mean) * scale.
    pub mean: [f32; 3],
    pub scale: [f32; 3],
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorFamily {
    Retinaface,
    Scrfd,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetinafaceSpec {
    pub boxes: String,
    pub scores: String,
    pub landmarks: String,
    pub steps: Vec<u32>,
    pub min_sizes: Vec<Vec<f32>>,
    pub variances: [f32; 2],
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrfdSpec {
    pub strides: Vec<u32>,
    pub anchors_per_cell: u32,
    pub scores: Vec<String>,
    pub boxes: Vec<String>,
    pub keypoints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    pub family: DetectorFamily,
    pub score_threshold: f32,
    pub nms_iou: f32,
    #[serde(default = "default_max_faces")]
    pub max_faces: usize,
    pub retinaface: Option<RetinafaceSpec>,
    pub scrfd: Option<ScrfdSpec>,
}

fn default_max_faces() -> usize {
    100
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderSpec {
    pub output: String,
    pub embedding_size: usize,
    /// Where the 5 landmarks land in the embedder's input (pixels), same order as detectors give.
    pub template: [[f32; 2]; 5],
}

/// Cosine-similarity thresholds of an embedder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// 1:1 verification: same person at or above.
    pub verify: f32,
    /// 1:N identification: accept at or above.
    pub accept: f32,
    /// 1:N identification: review between `review` and `accept`, unknown below.
    pub review: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub id: String,
    pub version: String,
    pub kind: ModelKind,
    pub file: String,
    pub sha256: String,
    #[serde(default)]
    pub description: String,
    pub input: InputSpec,
    pub detector: Option<DetectorSpec>,
    pub embedder: Option<EmbedderSpec>,
    pub thresholds: Option<Thresholds>,
}

impl ModelManifest {
    /// Parses and checks a manifest's internal consistency (not the model file).
    pub fn parse(text: &str, origin: &str) -> Result<Self, VisionError> {
        let bad = |reason: String| VisionError::Manifest {
            path: origin.to_string(),
            reason,
        };
        let m: ModelManifest = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if m.id.is_empty() || m.version.is_empty() {
            return Err(bad("id and version must not be empty".into()));
        }
        if m.sha256.len() != 64 || !m.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("sha256 must be 64 hex digits".into()));
        }
        if m.input.width == 0 || m.input.height == 0 {
            return Err(bad("input width/height must be positive".into()));
        }
        if m.input.multiple_of == 0
            || !m.input.width.is_multiple_of(m.input.multiple_of)
            || !m.input.height.is_multiple_of(m.input.multiple_of)
        {
            return Err(bad(
                "input width/height must be multiples of multiple_of".into()
            ));
        }
        if m.input.scale.iter().any(|s| !s.is_finite() || *s == 0.0)
            || m.input.mean.iter().any(|v| !v.is_finite())
        {
            return Err(bad("mean/scale must be finite and scale non-zero".into()));
        }
        match m.kind {
            ModelKind::Detector => {
                let d = m
                    .detector
                    .as_ref()
                    .ok_or_else(|| bad("a detector needs a [detector] table".into()))?;
                if !(0.0..=1.0).contains(&d.score_threshold) || !(0.0..=1.0).contains(&d.nms_iou) {
                    return Err(bad("score_threshold and nms_iou must be in [0, 1]".into()));
                }
                match d.family {
                    DetectorFamily::Retinaface => {
                        let r = d.retinaface.as_ref().ok_or_else(|| {
                            bad("family retinaface needs [detector.retinaface]".into())
                        })?;
                        if r.steps.is_empty()
                            || r.steps.len() != r.min_sizes.len()
                            || r.steps.contains(&0)
                        {
                            return Err(bad(
                                "retinaface: steps and min_sizes must be non-empty, same length"
                                    .into(),
                            ));
                        }
                    }
                    DetectorFamily::Scrfd => {
                        let s = d
                            .scrfd
                            .as_ref()
                            .ok_or_else(|| bad("family scrfd needs [detector.scrfd]".into()))?;
                        let n = s.strides.len();
                        if n == 0
                            || s.scores.len() != n
                            || s.boxes.len() != n
                            || s.keypoints.len() != n
                            || s.anchors_per_cell == 0
                            || s.strides.contains(&0)
                        {
                            return Err(bad(
                                "scrfd: one scores/boxes/keypoints output per stride".into()
                            ));
                        }
                    }
                }
            }
            ModelKind::Embedder => {
                let e = m
                    .embedder
                    .as_ref()
                    .ok_or_else(|| bad("an embedder needs an [embedder] table".into()))?;
                if e.embedding_size == 0 {
                    return Err(bad("embedding_size must be positive".into()));
                }
                let t = m
                    .thresholds
                    .ok_or_else(|| bad("an embedder needs [thresholds]".into()))?;
                // Written so that a NaN threshold is refused too.
                #[allow(clippy::neg_cmp_op_on_partial_ord)]
                if !(t.review <= t.accept) {
                    return Err(bad("thresholds: review must be <= accept".into()));
                }
            }
        }
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<Self, VisionError> {
        let text = std::fs::read_to_string(path).map_err(|source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// `id@version`, the tag carried by every embedding.
    pub fn tag(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    pub fn thresholds(&self) -> Option<Thresholds> {
        self.thresholds
    }
}

/// The set of known manifests: built-ins plus any `*.toml` in an extra directory (which win on
/// equal id).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub manifests: Vec<ModelManifest>,
}

impl Catalog {
    pub fn builtin() -> Self {
        let manifests = BUILTIN
            .iter()
            .map(|(name, text)| {
                ModelManifest::parse(text, name).expect("built-in manifests are valid (tested)")
            })
            .collect();
        Self { manifests }
    }

    /// Built-ins plus the manifests found in `dir`.
    pub fn with_dir(dir: &Path) -> Result<Self, VisionError> {
        let mut cat = Self::builtin();
        let rd = std::fs::read_dir(dir).map_err(|source| VisionError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for p in paths {
            let m = ModelManifest::load(&p)?;
            cat.manifests.retain(|x| x.id != m.id);
            cat.manifests.push(m);
        }
        Ok(cat)
    }

    pub fn get(&self, id: &str) -> Option<&ModelManifest> {
        self.manifests.iter().find(|m| m.id == id)
    }
}

/// Resolves the directory that holds the model files: the configured path, else
/// `ROLLCALL_MODELS_DIR`, else `../shared/models` (relative to the current directory, then to
/// the executable's ancestors).
pub fn resolve_models_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Ok(p) = std::env::var("ROLLCALL_MODELS_DIR") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(d) = exe.parent() {
            starts.push(d.to_path_buf());
        }
    }
    for s in &starts {
        let mut dir: Option<&Path> = Some(s);
        while let Some(d) = dir {
            let cand = d.join("../shared/models");
            if cand.is_dir() {
                return cand;
            }
            dir = d.parent();
        }
    }
    PathBuf::from("../shared/models")
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, VisionError> {
    let io = |source| VisionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Locates a manifest's model file in `dir` and checks its sha256.
pub fn verified_model_path(m: &ModelManifest, dir: &Path) -> Result<PathBuf, VisionError> {
    let path = dir.join(&m.file);
    if !path.is_file() {
        return Err(VisionError::ModelMissing {
            path,
            dir: dir.to_path_buf(),
        });
    }
    let actual = sha256_file(&path)?;
    if !actual.eq_ignore_ascii_case(&m.sha256) {
        return Err(VisionError::ChecksumMismatch {
            path,
            expected: m.sha256.clone(),
            actual,
        });
    }
    Ok(path)
}

/// Checks the session's declared inputs and outputs against the manifest.
pub(crate) fn check_session(
    m: &ModelManifest,
    session: &ort::session::Session,
    outputs: &[&str],
) -> Result<(), VisionError> {
    use ort::value::ValueType;
    let mismatch = |reason: String| VisionError::ShapeMismatch {
        model: m.tag(),
        reason,
    };
    let input = session
        .inputs()
        .iter()
        .find(|i| i.name() == m.input.name)
        .ok_or_else(|| {
            let names: Vec<_> = session
                .inputs()
                .iter()
                .map(|i| i.name().to_string())
                .collect();
            mismatch(format!(
                "no input named {:?} (inputs: {names:?})",
                m.input.name
            ))
        })?;
    let shape: Vec<i64> = match input.dtype() {
        ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
        other => {
            return Err(mismatch(format!(
                "input {} is not a tensor: {other:?}",
                m.input.name
            )))
        }
    };
    if shape.len() != 4 {
        return Err(mismatch(format!(
            "input {} has rank {}, expected NCHW (4)",
            m.input.name,
            shape.len()
        )));
    }
    if shape[1] != 3 {
        return Err(mismatch(format!(
            "input {} has {} channels, expected 3",
            m.input.name, shape[1]
        )));
    }
    let (h, w) = (shape[2], shape[3]);
    if m.input.dynamic {
        if h > 0 || w > 0 {
            return Err(mismatch(format!(
                "manifest says dynamic input, the file fixes {w}x{h}"
            )));
        }
    } else if h != m.input.height as i64 || w != m.input.width as i64 {
        return Err(mismatch(format!(
            "input {} is {}x{} in the file, the manifest says {}x{}",
            m.input.name, w, h, m.input.width, m.input.height
        )));
    }
    for name in outputs {
        if !session.outputs().iter().any(|o| o.name() == *name) {
            let names: Vec<_> = session
                .outputs()
                .iter()
                .map(|o| o.name().to_string())
                .collect();
            return Err(mismatch(format!(
                "no output named {name:?} (outputs: {names:?})"
            )));
        }
    }
    if let Some(e) = &m.embedder {
        let out = session
            .outputs()
            .iter()
            .find(|o| o.name() == e.output)
            .expect("checked above");
        if let ValueType::Tensor { shape, .. } = out.dtype() {
            let last = shape.last().copied().unwrap_or(-1);
            if last != e.embedding_size as i64 {
                return Err(mismatch(format!(
                    "output {} has {} features, the manifest says embedding_size {}",
                    e.output, last, e.embedding_size
                )));
            }
        }
    }
    Ok(())
}

/// Whether the first (batch) dimension of the model's input is dynamic.
pub(crate) fn batch_is_dynamic(m: &ModelManifest, session: &ort::session::Session) -> bool {
    use ort::value::ValueType;
    session
        .inputs()
        .iter()
        .find(|i| i.name() == m.input.name)
        .and_then(|i| match i.dtype() {
            ValueType::Tensor { shape, .. } => shape.first().copied(),
            _ => None,
        })
        .is_some_and(|b| b < 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifests_parse() {
        let c = Catalog::builtin();
        assert_eq!(c.manifests.len(), 3);
        let e = c.get("mobilefacenet_128").unwrap();
        assert_eq!(e.embedder.as_ref().unwrap().embedding_size, 128);
        let t = e.thresholds.unwrap();
        assert!(t.review <= t.verify && t.verify <= t.accept);
    }

    #[test]
    fn arcface_needs_only_a_manifest() {
        let text = r#"
id = "arcface_r100"
version = "1"
kind = "embedder"
file = "arcface_r100.onnx"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[input]
name = "data"
width = 112
height = 112
channel_order = "rgb"
mean = [127.5, 127.5, 127.5]
scale = [0.0078125, 0.0078125, 0.0078125]
[embedder]
output = "fc1"
embedding_size = 512
template = [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
[thresholds]
verify = 0.3
accept = 0.35
review = 0.25
"#;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("arcface.toml"), text).unwrap();
        let c = Catalog::with_dir(dir.path()).unwrap();
        assert_eq!(
            c.get("arcface_r100")
                .unwrap()
                .embedder
                .as_ref()
                .unwrap()
                .embedding_size,
            512
        );
        // the model file is absent: a clear error, no panic
        let err = verified_model_path(c.get("arcface_r100").unwrap(), dir.path()).unwrap_err();
        assert!(matches!(err, VisionError::ModelMissing { .. }), "{err}");
    }

    #[test]
    fn bad_manifests_are_refused() {
        let good = BUILTIN[2].1;
        for (from, to) in [
            ("embedding_size = 128", "embedding_size = 0"),
            ("review = 0.", "review = 9"),
            ("kind = \"embedder\"", "kind = \"classifier\""),
            ("sha256 = \"f055", "sha256 = \"zz55"),
        ] {
            assert!(good.contains(from), "{from}");
            let text = good.replacen(from, to, 1);
            assert!(
                ModelManifest::parse(&text, "t").is_err(),
                "accepted after {from} -> {to}"
            );
        }
    }
}
