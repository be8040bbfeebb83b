//! A directory of still images played as a video: no OpenCV involved.

use crate::{CaptureError, CapturedFrame, FrameSource};
use image::{ImageReader, Limits};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::Frame;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Largest image accepted from a folder (width × height), checked from the header before the
/// pixel buffer is allocated.
pub const MAX_FOLDER_IMAGE_PIXELS: u64 = 40_000_000;

/// Plays the JPEG and PNG files of a directory, sorted by file name, as a finite video at a
/// fixed frame rate (frame `i` has position `i / fps`).
///
/// The directory is listed again on every [`open`](FrameSource::open). Files that cannot be read
/// or decoded are skipped with a warning (a corrupt image never stops the camera); the skips are
/// counted in [`ImageFolderSource::skipped`]. Images may differ in size.
pub struct ImageFolderSource {
    dir: PathBuf,
    fps: f64,
    files: Vec<PathBuf>,
    next: usize,
    open: bool,
    skipped: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ImageFolderSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageFolderSource")
            .field("dir", &self.dir)
            .field("fps", &self.fps)
            .field("files", &self.files.len())
            .field("next", &self.next)
            .field("open", &self.open)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl ImageFolderSource {
    /// A source over `dir` advancing at `fps` frames per second of media time.
    pub fn new(dir: impl Into<PathBuf>, fps: f64) -> Result<Self, CaptureError> {
        if !(fps.is_finite() && fps > 0.0) {
            return Err(CaptureError::Config(format!(
                "image folder fps must be positive, got {fps}"
            )));
        }
        Ok(Self {
            dir: dir.into(),
            fps,
            files: Vec::new(),
            next: 0,
            open: false,
            skipped: 0,
            clock: Arc::new(SystemClock),
        })
    }

    /// Frames are stamped with the time on `clock` (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Number of files skipped because they could not be read or decoded.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The images the last `open` found, in play order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn list(dir: &Path) -> Result<Vec<PathBuf>, CaptureError> {
        let io = |source| CaptureError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
                .unwrap_or(false);
            if is_image && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }

    fn decode(path: &Path) -> Result<Frame, String> {
        let mut reader = ImageReader::open(path)
            .map_err(|e| e.to_string())?
            .with_guessed_format()
            .map_err(|e| e.to_string())?;
        // The decoder checks these against the header before allocating the pixel buffer.
        let mut limits = Limits::default();
        limits.max_image_width = Some(16_384);
        limits.max_image_height = Some(16_384);
        limits.max_alloc = Some(MAX_FOLDER_IMAGE_PIXELS * 4);
        reader.limits(limits);
        let img = reader.decode().map_err(|e| e.to_string())?.into_rgb8();
        let (w, h) = img.dimensions();
        Frame::from_rgb(w, h, img.into_raw()).map_err(|e| e.to_string())
    }
}

impl FrameSource for ImageFolderSource {
    fn open(&mut self) -> Result<(), CaptureError> {
        self.files = Self::list(&self.dir)?;
        if self.files.is_empty() {
            return Err(CaptureError::Open {
                source_name: self.describe(),
                why: "no .jpg/.jpeg/.png files".into(),
            });
        }
        self.next = 0;
        self.open = true;
        Ok(())
    }

    fn read(&mut self) -> Result<Option<CapturedFrame>, CaptureError> {
        if !self.open {
            return Err(CaptureError::NotOpen(self.describe()));
        }
        while let Some(path) = self.files.get(self.next) {
            let index = self.next;
            self.next += 1;
            match Self::decode(path) {
                Ok(frame) => {
                    let position = Duration::try_from_secs_f64(index as f64 / self.fps).ok();
                    return Ok(Some(CapturedFrame::now(frame, position, &*self.clock)));
                }
                Err(why) => {
                    self.skipped += 1;
                    tracing::warn!(file = %path.display(), %why, "skipping undecodable image");
                }
            }
        }
        Ok(None)
    }

    fn close(&mut self) {
        self.open = false;
    }

    fn is_live(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        format!("folder:{}", self.dir.display())
    }

    fn native_fps(&self) -> Option<f64> {
        Some(self.fps)
    }
}
