//! The crate's boundary error.

use std::path::PathBuf;

/// Everything that can go wrong opening or reading a camera, or configuring one.
///
/// Messages never contain URL credentials: every URL is passed through
/// [`redact_url`](crate::redact_url) before it is stored in an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The camera configuration is invalid.
    #[error("invalid camera config: {0}")]
    Config(String),
    /// The URL is not something this crate can read.
    #[error("unsupported source {url:?}: {why}")]
    UnsupportedSource { url: String, why: String },
    /// The source could not be opened (connection refused, file missing, no decoder...).
    #[error("cannot open {source_name}: {why}")]
    Open { source_name: String, why: String },
    /// A live stream stopped delivering frames (read failed, timed out or the server went away).
    #[error("stream {source_name} lost: {why}")]
    StreamLost { source_name: String, why: String },
    /// A frame could not be decoded or converted.
    #[error("bad frame from {source_name}: {why}")]
    BadFrame { source_name: String, why: String },
    /// `read` was called on a source that is not open.
    #[error("source {0} is not open")]
    NotOpen(String),
    /// Filesystem error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The capture thread could not be started.
    #[error("cannot start capture thread for camera {camera}: {source}")]
    Spawn {
        camera: String,
        #[source]
        source: std::io::Error,
    },
    /// An OpenCV call failed (raised a C++ exception). The message is OpenCV's.
    #[error("opencv: {0}")]
    OpenCv(String),
}

impl From<opencv::Error> for CaptureError {
    fn from(e: opencv::Error) -> Self {
        CaptureError::OpenCv(e.message)
    }
}

impl CaptureError {
    /// Whether retrying later may help (network or device trouble) as opposed to a configuration
    /// mistake that will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            CaptureError::Config(_) | CaptureError::UnsupportedSource { .. }
        )
    }
}
