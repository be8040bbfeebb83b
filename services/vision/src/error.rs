use std::path::PathBuf;

/// Every way the vision stage can fail. Input problems are errors, never panics.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not a supported image (JPEG, PNG or WebP): {0}")]
    UnsupportedFormat(String),
    /// A phone photo format that is recognised but cannot be decoded here (HEIC, AVIF): the
    /// message names it and says what to do.
    #[error("{format} photo: not supported; {}", .format.conversion_advice())]
    NeedsConversion {
        format: rollcall_domain::photo::PhotoFormat,
    },
    #[error("corrupt or truncated image: {0}")]
    CorruptImage(String),
    #[error("image is empty (zero width or height)")]
    EmptyImage,
    #[error("image too large: {width}x{height} exceeds the limit of {max_pixels} pixels")]
    ImageTooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("image data exceeds the limit of {limit} bytes")]
    InputTooLarge { limit: u64 },
    #[error("invalid model manifest {path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error("model file {path} not found (models directory: {dir}); see models/README.md for how to obtain it")]
    ModelMissing { path: PathBuf, dir: PathBuf },
    #[error("model file {path} has sha256 {actual}, its manifest says {expected}")]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("model {model} does not match its manifest: {reason}")]
    ShapeMismatch { model: String, reason: String },
    #[error("ONNX Runtime library not available: {0}")]
    RuntimeUnavailable(String),
    #[error("ONNX Runtime error in {model}: {message}")]
    Inference { model: String, message: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
}
