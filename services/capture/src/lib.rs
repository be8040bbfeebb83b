//! Camera frame sources for rollcall.
//!
//! - [`FrameSource`]: a blocking open → read → close port, implemented by [`OpenCvSource`]
//!   (OpenCV `VideoCapture`: video files, `rtsp://`, `http(s)://` MJPEG, local devices) and
//!   [`ImageFolderSource`] (sorted JPEG/PNG files, decoded with the `image` crate).
//!   [`open_source`] picks one from a camera URL.
//! - [`CameraConfig`]: one camera's settings (id, url, campus, door, fps cap, enabled, loop,
//!   reconnect backoff, stale timeout), deserialised from TOML.
//! - [`spawn_camera`] / [`spawn_cameras`]: one OS thread per camera that hands frames on through a
//!   latest-frame-wins slot ([`FrameReceiver`]): a slow consumer never stalls capture, and
//!   overwritten frames are counted as dropped. Failing streams reconnect with capped exponential
//!   backoff, a watchdog reports stale streams, and every change is sent as a [`HealthEvent`] to
//!   the caller's [`HealthSink`]. Each camera is independent: one bad camera never affects the
//!   others.
//!
//! MJPEG over `http://` is read by OpenCV's FFmpeg backend (its `mpjpeg` demuxer); the tests
//! serve `multipart/x-mixed-replace` JPEG parts from a local server and read them that way.
//! Network streams are opened with OpenCV's open/read timeouts, so a stream that goes silent makes
//! the blocked read fail (after twice the stale timeout) and the camera reconnects.
//!
//! This crate knows nothing about faces, the gallery, the ledger or wire formats: it delivers RGB
//! [`rollcall_domain::Frame`]s and health events, and the caller decides what to do with them.
//!
//! ```no_run
//! use rollcall_capture::{spawn_camera, CameraConfig, HealthEvent};
//! use rollcall_domain::clock::SystemClock;
//! use std::sync::{mpsc, Arc};
//!
//! let cfg = CameraConfig::new("lobby".parse()?, "rtsp://cam.local/stream1", "north".parse()?);
//! let (tx, health) = mpsc::channel::<HealthEvent>();
//! let cam = spawn_camera(&cfg, Arc::new(tx), Arc::new(SystemClock))?;
//! let frames = cam.frames().clone();
//! std::thread::spawn(move || {
//!     while let Some(f) = frames.recv() {
//!         // run the pipeline on f.frame (RGB8), stamped f.captured_at
//!     }
//! });
//! for ev in health.iter().take(3) {
//!     println!("{} {:?}", ev.camera, ev.health);
//! }
//! let counters = cam.stop();
//! println!("in {} dropped {}", counters.frames_in, counters.frames_dropped);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod error;
mod folder;
mod opencv_source;
mod slot;
mod source;
mod worker;

pub use config::{
    redact_url, BackoffConfig, CameraConfig, SourceSpec, DEFAULT_FOLDER_FPS, MAX_CONFIG_MS,
};
pub use error::CaptureError;
pub use folder::{ImageFolderSource, MAX_FOLDER_IMAGE_PIXELS};
pub use opencv_source::{mat_to_rgb_frame, OpenCvSource};
pub use slot::{frame_slot, FrameReceiver, FrameSlotWriter};
pub use source::{open_source, CapturedFrame, FrameSource, SourceOptions};
pub use worker::{
    source_options, spawn_camera, spawn_cameras, spawn_source, CameraHealth, CameraState,
    CaptureCounters, CaptureHandle, HealthEvent, HealthSink, Resolution,
};
