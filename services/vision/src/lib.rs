//! rollcall-vision: turns an image into detected, quality-scored, aligned and embedded faces.
//!
//! Everything model-specific (input size, channel order, normalisation, output names, prior
//! or anchor layout, alignment template, thresholds) comes from a [`manifest::ModelManifest`],
//! so supporting another detector or embedder of a known family is a new manifest, not code.
//!
//! Stages: [`decode`] (bytes → RGB with limits) → [`detect`] (letterbox, ONNX, decode, NMS) →
//! [`quality`] (gate with reason codes) → [`align`] (similarity transform + bilinear warp) →
//! [`embed`] (ONNX, L2-normalised, tagged with the model's id and version).

pub mod align;
pub mod decode;
pub mod detect;
pub mod embed;
pub mod error;
pub mod manifest;
pub mod pipeline;
pub mod preprocess;
pub mod quality;
pub mod runtime;

pub use error::VisionError;
pub use pipeline::{AnalyzedFace, FacePipeline, PipelineConfig};
