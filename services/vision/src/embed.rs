//! The embedder: aligned faces in, L2-normalised embeddings tagged with the model out.

use crate::manifest::{self, EmbedderSpec, ModelKind, ModelManifest, Thresholds};
use crate::preprocess::normalise_append;
use crate::runtime::{open_session, Provider, SessionOptions};
use crate::VisionError;
use ort::session::Session;
use ort::value::TensorRef;
use rollcall_domain::face::Embedding;
use rollcall_domain::Frame;
use std::path::Path;

pub struct Embedder {
    manifest: ModelManifest,
    spec: EmbedderSpec,
    session: Session,
    provider: Provider,
    batch_dynamic: bool,
    buf: Vec<f32>,
}

impl Embedder {
    pub fn open(
        manifest: &ModelManifest,
        models_dir: &Path,
        opts: &SessionOptions,
    ) -> Result<Self, VisionError> {
        if manifest.kind != ModelKind::Embedder {
            return Err(VisionError::Manifest {
                path: manifest.id.clone(),
                reason: "not an embedder".into(),
            });
        }
        let spec = manifest
            .embedder
            .clone()
            .expect("validated by ModelManifest::parse");
        let path = manifest::verified_model_path(manifest, models_dir)?;
        let (session, provider) = open_session(&manifest.tag(), &path, opts)?;
        manifest::check_session(manifest, &session, &[spec.output.as_str()])?;
        let batch_dynamic = manifest::batch_is_dynamic(manifest, &session);
        Ok(Self {
            manifest: manifest.clone(),
            spec,
            session,
            provider,
            batch_dynamic,
            buf: Vec::new(),
        })
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    pub fn template(&self) -> &[[f32; 2]; 5] {
        &self.spec.template
    }

    pub fn input_size(&self) -> (u32, u32) {
        (self.manifest.input.width, self.manifest.input.height)
    }

    pub fn thresholds(&self) -> Thresholds {
        self.manifest
            .thresholds
            .expect("validated: embedders have thresholds")
    }

    /// Where the model runs (the CPU unless `--cuda` registered the CUDA provider).
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Whether several faces go through one session call.
    pub fn batches(&self) -> bool {
        self.batch_dynamic
    }

    /// Embeds aligned faces (each exactly the model's input size). One call per face when the
    /// model's batch dimension is fixed, one call for all when it is dynamic.
    pub fn embed(&mut self, faces: &[&Frame]) -> Result<Vec<Embedding>, VisionError> {
        Ok(self
            .embed_with_norms(faces)?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    /// [`Embedder::embed`], each embedding with the L2 norm of the model's raw output before
    /// normalisation (for models trained with a margin loss it grows with how recognisable the
    /// face is: a quality signal of the embedder's own).
    pub fn embed_with_norms(
        &mut self,
        faces: &[&Frame],
    ) -> Result<Vec<(Embedding, f32)>, VisionError> {
        let (w, h) = self.input_size();
        for f in faces {
            if f.width() != w || f.height() != h {
                return Err(VisionError::InvalidInput(format!(
                    "aligned face is {}x{}, the embedder needs {w}x{h}",
                    f.width(),
                    f.height()
                )));
            }
        }
        let mut out = Vec::with_capacity(faces.len());
        if faces.is_empty() {
            return Ok(out);
        }
        let chunk = if self.batch_dynamic { faces.len() } else { 1 };
        for group in faces.chunks(chunk) {
            self.buf.clear();
            for f in group {
                normalise_append(f.rgb(), &self.manifest.input, &mut self.buf);
            }
            let shape = [group.len(), 3, h as usize, w as usize];
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
            let (_, data) = outputs[self.spec.output.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(ierr)?;
            let d = self.spec.embedding_size;
            if data.len() != d * group.len() {
                return Err(VisionError::ShapeMismatch {
                    model: tag.clone(),
                    reason: format!("output has {} values for {} faces", data.len(), group.len()),
                });
            }
            for v in data.chunks_exact(d) {
                let (vector, norm) = normalise_with_norm(v);
                out.push((
                    Embedding {
                        model_id: self.manifest.id.clone(),
                        model_version: self.manifest.version.clone(),
                        vector,
                    },
                    norm,
                ));
            }
        }
        Ok(out)
    }
}

/// Returns `v / |v|` (a zero vector stays zero).
pub fn l2_normalise(v: &[f32]) -> Vec<f32> {
    normalise_with_norm(v).0
}

/// `v` scaled to unit length (all zeros when its norm is 0 or not finite), and that norm.
fn normalise_with_norm(v: &[f32]) -> (Vec<f32>, f32) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 && n.is_finite() {
        (v.iter().map(|x| x / n).collect(), n)
    } else {
        (vec![0.0; v.len()], n)
    }
}
