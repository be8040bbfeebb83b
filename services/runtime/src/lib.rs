//! rollcall-runtime: the live path from frame to deduction, shared by every driver of the
//! binary (`serve`, `watch`, `run-scenario`, `bench pipeline`):
//!
//! - [`pool`]: the inference pool (latest frame wins per camera, per-camera order, bounded),
//!   generic over an [`pool::Analyzer`];
//! - [`recognizer`]: gallery search, tracker, debounced matcher, the one event-key builder;
//! - [`sink`]: the one decision sink (accept → check-in, review → review item with crop,
//!   unknown → visitor);
//! - [`writer`]: the ledger writer (group commit, retries by the ledger's error classes,
//!   parking);
//! - [`health`]: camera health → alerts; [`metrics`]: `/metrics` and `/healthz`;
//! - [`live`]: the serve loop (capture → pool → recognizer → sink, timers) and its jobs;
//! - [`enrollment`]: photos → face pipeline (on the blocking pool) → sealed templates →
//!   gallery, and identification of a photo (the gallery itself knows no images or models).
//!
//! It must not know wire formats (HTTP, JSON APIs, TOML), nor SQL (it calls the ledger).

pub mod enrollment;
pub mod health;
pub mod live;
pub mod metrics;
pub mod pool;
pub mod recognizer;
pub mod sink;
pub mod writer;

pub use recognizer::{face_check_in, track_key, FaceAnalyzer, FrameFaces, Latencies, Recognizer};
pub use sink::DecisionSink;
pub use writer::{Committed, GroupPort, LedgerPort, LedgerWriter, RetryPolicy};

/// Errors of the live path.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("gallery: {0}")]
    Gallery(#[from] rollcall_domain::gallery::GalleryError),
    #[error("ledger: {0}")]
    Ledger(#[from] rollcall_ledger::LedgerError),
    #[error("inference: {0}")]
    Inference(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
