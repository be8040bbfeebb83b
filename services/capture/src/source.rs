//! The frame-source port and the frame type it produces.

use crate::config::{SourceSpec, DEFAULT_FOLDER_FPS};
use crate::{CaptureError, ImageFolderSource, OpenCvSource};
use chrono::{DateTime, Utc};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::Frame;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One decoded frame with its timestamps.
#[derive(Debug, Clone)]
pub struct CapturedFrame {
    /// The RGB8 pixels.
    pub frame: Frame,
    /// Sequence number within this capture (counts every frame read from the source since the
    /// worker started, across reconnects; gaps mean skipped or dropped frames).
    pub seq: u64,
    /// Wall-clock time the frame was read.
    pub captured_at: DateTime<Utc>,
    /// Monotonic time the frame was read, for latency measurement.
    pub captured_instant: Instant,
    /// Position in the media for finite sources (video timestamp, or index / fps for image
    /// folders); `None` for live streams.
    pub position: Option<Duration>,
}

impl CapturedFrame {
    /// Stamps a frame with the time now on `clock`.
    pub fn now(frame: Frame, position: Option<Duration>, clock: &dyn Clock) -> Self {
        Self {
            frame,
            seq: 0,
            captured_at: clock.now(),
            captured_instant: Instant::now(),
            position,
        }
    }
}

/// A blocking source of frames: a file, a stream, a device or a folder.
///
/// The life cycle is `open` → `read`* → `close`, and a source may be opened again after `close`
/// (that is how the capture worker reconnects and loops).
pub trait FrameSource: Send {
    /// Opens (or re-opens) the source. May block up to the source's open timeout.
    fn open(&mut self) -> Result<(), CaptureError>;

    /// Reads the next frame, blocking until it arrives.
    ///
    /// `Ok(None)` means a finite source has ended; a live source reports a broken stream as
    /// `Err` instead (typically [`CaptureError::StreamLost`]).
    fn read(&mut self) -> Result<Option<CapturedFrame>, CaptureError>;

    /// Reads the next frame but converts it only if `want` (given the frame's media position,
    /// for finite sources) says so: a frame the fps cap is going to drop then costs its decode
    /// only, not the colour conversion and copy into a [`Frame`].
    ///
    /// `Ok(None)`: the source ended (as for [`FrameSource::read`]); `Ok(Some(None))`: a frame
    /// arrived and was skipped; `Ok(Some(Some(f)))`: the frame. The default reads and then
    /// drops; sources that can separate the two (OpenCV's `grab`/`retrieve`) override it.
    #[allow(clippy::type_complexity)]
    fn read_or_skip(
        &mut self,
        want: &mut dyn FnMut(Option<Duration>) -> bool,
    ) -> Result<Option<Option<CapturedFrame>>, CaptureError> {
        Ok(self
            .read()?
            .map(|f| if want(f.position) { Some(f) } else { None }))
    }

    /// Releases the underlying handle. Idempotent.
    fn close(&mut self);

    /// Whether the source is live (reconnect when it stops) rather than finite (ends).
    fn is_live(&self) -> bool;

    /// A name for logs and errors, credentials redacted.
    fn describe(&self) -> String;

    /// The source's own frame rate if it declares one (video files, some streams).
    fn native_fps(&self) -> Option<f64> {
        None
    }
}

impl FrameSource for Box<dyn FrameSource> {
    fn open(&mut self) -> Result<(), CaptureError> {
        (**self).open()
    }
    fn read(&mut self) -> Result<Option<CapturedFrame>, CaptureError> {
        (**self).read()
    }
    fn read_or_skip(
        &mut self,
        want: &mut dyn FnMut(Option<Duration>) -> bool,
    ) -> Result<Option<Option<CapturedFrame>>, CaptureError> {
        (**self).read_or_skip(want)
    }
    fn close(&mut self) {
        (**self).close()
    }
    fn is_live(&self) -> bool {
        (**self).is_live()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn native_fps(&self) -> Option<f64> {
        (**self).native_fps()
    }
}

/// Options for [`open_source`] beyond the URL.
#[derive(Clone)]
pub struct SourceOptions {
    /// Rate of the image-folder timeline (frame `i` is at `i / fps`).
    pub folder_fps: f64,
    /// Give up opening a network stream after this long.
    pub open_timeout: Duration,
    /// A network read that blocks this long fails (the worker then reconnects).
    pub read_timeout: Duration,
    /// Where frames' wall-clock times come from.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceOptions")
            .field("folder_fps", &self.folder_fps)
            .field("open_timeout", &self.open_timeout)
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            folder_fps: DEFAULT_FOLDER_FPS,
            open_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Builds the right [`FrameSource`] for a camera URL (not yet opened).
///
/// Image folders use [`ImageFolderSource`]; everything else goes through OpenCV's `VideoCapture`
/// ([`OpenCvSource`]).
pub fn open_source(
    url: &str,
    options: &SourceOptions,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    let spec = SourceSpec::parse(url)?;
    Ok(match spec {
        SourceSpec::Folder(dir) => Box::new(
            ImageFolderSource::new(dir, options.folder_fps)?.with_clock(options.clock.clone()),
        ),
        other => Box::new(
            OpenCvSource::new(other, options.open_timeout, options.read_timeout)
                .with_clock(options.clock.clone()),
        ),
    })
}
