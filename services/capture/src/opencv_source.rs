//! OpenCV `VideoCapture` behind [`FrameSource`]: video files, RTSP, HTTP(S) streams and local
//! capture devices.

use crate::config::{redact_url, SourceSpec};
use crate::{CaptureError, CapturedFrame, FrameSource};
use opencv::core::{Mat, ToInputArray, Vec3b, Vector, CV_8U};
use opencv::prelude::*;
use opencv::{imgproc, videoio};
use rollcall_domain::clock::{Clock, SystemClock};
use rollcall_domain::Frame;
use std::sync::Arc;
use std::time::Duration;

/// A [`FrameSource`] backed by `cv::VideoCapture`.
///
/// Files and network URLs go through the FFmpeg backend (with open and read timeouts, so a dead
/// stream makes `read` fail rather than block forever); devices through whichever backend OpenCV
/// picks (V4L2 on Linux). FFmpeg options such as `rtsp_transport;tcp` can be given to OpenCV
/// through the `OPENCV_FFMPEG_CAPTURE_OPTIONS` environment variable.
pub struct OpenCvSource {
    spec: SourceSpec,
    name: String,
    open_timeout: Duration,
    read_timeout: Duration,
    cap: Option<videoio::VideoCapture>,
    bgr: Mat,
    fps: Option<f64>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OpenCvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCvSource")
            .field("source", &self.name)
            .field("open", &self.cap.is_some())
            .finish()
    }
}

impl OpenCvSource {
    /// A source for `spec` (not opened yet). Timeouts apply to network streams.
    pub fn new(spec: SourceSpec, open_timeout: Duration, read_timeout: Duration) -> Self {
        let name = match &spec {
            SourceSpec::File(p) | SourceSpec::Folder(p) | SourceSpec::DevicePath(p) => {
                p.display().to_string()
            }
            SourceSpec::Rtsp(u) | SourceSpec::Http(u) => redact_url(u),
            SourceSpec::DeviceIndex(i) => format!("device {i}"),
        };
        Self {
            spec,
            name,
            open_timeout,
            read_timeout,
            cap: None,
            bgr: Mat::default(),
            fps: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Frames are stamped with the time on `clock` (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Classifies `url` and builds a source for it with 10 s timeouts.
    pub fn from_url(url: &str) -> Result<Self, CaptureError> {
        let spec = SourceSpec::parse(url)?;
        Ok(Self::new(
            spec,
            Duration::from_secs(10),
            Duration::from_secs(10),
        ))
    }

    fn open_err(&self, why: impl Into<String>) -> CaptureError {
        CaptureError::Open {
            source_name: self.name.clone(),
            why: self.scrub(why.into()),
        }
    }

    /// Removes the unredacted URL from an OpenCV message, should one ever quote it.
    fn scrub(&self, msg: String) -> String {
        match &self.spec {
            SourceSpec::Rtsp(u) | SourceSpec::Http(u) if msg.contains(u.as_str()) => {
                msg.replace(u.as_str(), &self.name)
            }
            _ => msg,
        }
    }

    fn create_capture(&self) -> Result<videoio::VideoCapture, CaptureError> {
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
        let net_params = Vector::<i32>::from_slice(&[
            videoio::CAP_PROP_OPEN_TIMEOUT_MSEC,
            ms(self.open_timeout),
            videoio::CAP_PROP_READ_TIMEOUT_MSEC,
            ms(self.read_timeout),
        ]);
        let cap = match &self.spec {
            SourceSpec::File(path) => {
                if !path.is_file() {
                    return Err(self.open_err("no such file"));
                }
                let s = path
                    .to_str()
                    .ok_or_else(|| self.open_err("path is not valid UTF-8"))?;
                videoio::VideoCapture::from_file(s, videoio::CAP_FFMPEG)?
            }
            SourceSpec::Rtsp(url) | SourceSpec::Http(url) => {
                videoio::VideoCapture::from_file_with_params(url, videoio::CAP_FFMPEG, &net_params)?
            }
            SourceSpec::DeviceIndex(i) => videoio::VideoCapture::new(*i, videoio::CAP_ANY)?,
            SourceSpec::DevicePath(path) => {
                let s = path
                    .to_str()
                    .ok_or_else(|| self.open_err("path is not valid UTF-8"))?;
                videoio::VideoCapture::from_file(s, videoio::CAP_ANY)?
            }
            SourceSpec::Folder(_) => {
                return Err(CaptureError::UnsupportedSource {
                    url: self.name.clone(),
                    why: "image folders are read by ImageFolderSource".into(),
                })
            }
        };
        Ok(cap)
    }
}

impl FrameSource for OpenCvSource {
    fn open(&mut self) -> Result<(), CaptureError> {
        self.close();
        let cap = self.create_capture().map_err(|e| match e {
            CaptureError::OpenCv(why) => self.open_err(why),
            other => other,
        })?;
        if !cap.is_opened().unwrap_or(false) {
            return Err(self.open_err("VideoCapture did not open"));
        }
        let fps = cap.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        self.fps = (fps.is_finite() && fps > 0.0 && fps < 1000.0).then_some(fps);
        self.cap = Some(cap);
        Ok(())
    }

    fn read(&mut self) -> Result<Option<CapturedFrame>, CaptureError> {
        Ok(self.read_or_skip(&mut |_| true)?.flatten())
    }

    /// `grab` (demux and decode), then `retrieve` (colour conversion) only for wanted frames.
    fn read_or_skip(
        &mut self,
        want: &mut dyn FnMut(Option<Duration>) -> bool,
    ) -> Result<Option<Option<CapturedFrame>>, CaptureError> {
        let live = self.is_live();
        let Some(cap) = self.cap.as_mut() else {
            return Err(CaptureError::NotOpen(self.name.clone()));
        };
        let lost = |why: String| CaptureError::StreamLost {
            source_name: self.name.clone(),
            why,
        };
        let ended = || {
            if live {
                Err(lost("no frame (stream ended, timed out or failed)".into()))
            } else {
                Ok(None)
            }
        };
        match cap.grab() {
            Ok(true) => {}
            Ok(false) => return ended(),
            Err(e) => return Err(lost(self.scrub(e.message))),
        }
        let position = if live {
            None
        } else {
            cap.get(videoio::CAP_PROP_POS_MSEC)
                .ok()
                .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
        };
        if !want(position) {
            return Ok(Some(None));
        }
        match cap.retrieve(&mut self.bgr, 0) {
            Ok(true) if !self.bgr.empty() => {}
            Ok(_) => return ended(),
            Err(e) => return Err(lost(self.scrub(e.message))),
        }
        let frame = mat_to_rgb_frame(&self.bgr).map_err(|e| match e {
            CaptureError::OpenCv(why) => CaptureError::BadFrame {
                source_name: self.name.clone(),
                why,
            },
            CaptureError::BadFrame { why, .. } => CaptureError::BadFrame {
                source_name: self.name.clone(),
                why,
            },
            other => other,
        })?;
        Ok(Some(Some(CapturedFrame::now(
            frame,
            position,
            &*self.clock,
        ))))
    }

    fn close(&mut self) {
        if let Some(mut cap) = self.cap.take() {
            let _ = cap.release();
        }
    }

    fn is_live(&self) -> bool {
        self.spec.is_live()
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn native_fps(&self) -> Option<f64> {
        self.fps
    }
}

impl Drop for OpenCvSource {
    fn drop(&mut self) {
        self.close();
    }
}

/// Converts an 8-bit OpenCV image (BGR, BGRA or grey, as `VideoCapture` delivers them) into an
/// RGB [`Frame`].
///
/// The colour conversion writes straight into the frame's buffer (one pass, no intermediate RGB
/// `Mat` and no extra copy).
pub fn mat_to_rgb_frame<M>(mat: &M) -> Result<Frame, CaptureError>
where
    M: MatTraitConst + ToInputArray,
{
    let bad = |why: String| CaptureError::BadFrame {
        source_name: "mat".into(),
        why,
    };
    let (rows, cols) = (mat.rows(), mat.cols());
    if rows <= 0 || cols <= 0 || mat.dims() != 2 {
        return Err(bad(format!("empty or non-2D image ({cols}x{rows})")));
    }
    if mat.depth() != CV_8U {
        return Err(bad(format!("unsupported depth {}", mat.depth())));
    }
    let code = match mat.channels() {
        1 => imgproc::COLOR_GRAY2RGB,
        3 => imgproc::COLOR_BGR2RGB,
        4 => imgproc::COLOR_BGRA2RGB,
        n => return Err(bad(format!("unsupported channel count {n}"))),
    };
    let len = (rows as usize)
        .checked_mul(cols as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| bad("image too large".into()))?;
    let mut buf = vec![0u8; len];
    let target = buf.as_ptr();
    let reallocated = {
        let mut dst = Mat::new_rows_cols_with_bytes_mut::<Vec3b>(rows, cols, &mut buf)?;
        imgproc::cvt_color_def(mat, &mut dst, code)?;
        // cvt_color only reallocates `dst` if its size or type were wrong, which they are not;
        // if some OpenCV build ever does, copy the result out rather than return zeros.
        if dst.data() != target {
            Some(dst.data_bytes()?.to_vec())
        } else {
            None
        }
    };
    if let Some(bytes) = reallocated {
        buf = bytes;
    }
    Frame::from_rgb(cols as u32, rows as u32, buf).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_8UC1, CV_8UC3, CV_8UC4};

    #[test]
    fn bgr_becomes_rgb() {
        // B=10, G=20, R=30 everywhere.
        let m = Mat::new_rows_cols_with_default(2, 3, CV_8UC3, Scalar::new(10.0, 20.0, 30.0, 0.0))
            .unwrap();
        let f = mat_to_rgb_frame(&m).unwrap();
        assert_eq!((f.width(), f.height()), (3, 2));
        assert_eq!(&f.rgb()[..6], &[30, 20, 10, 30, 20, 10]);
    }

    #[test]
    fn grey_and_bgra_are_converted_and_bad_input_refused() {
        let g = Mat::new_rows_cols_with_default(1, 2, CV_8UC1, Scalar::all(7.0)).unwrap();
        assert_eq!(mat_to_rgb_frame(&g).unwrap().rgb(), &[7, 7, 7, 7, 7, 7]);
        let a = Mat::new_rows_cols_with_default(1, 1, CV_8UC4, Scalar::new(1.0, 2.0, 3.0, 4.0))
            .unwrap();
        assert_eq!(mat_to_rgb_frame(&a).unwrap().rgb(), &[3, 2, 1]);
        assert!(mat_to_rgb_frame(&Mat::default()).is_err());
        let f = Mat::new_rows_cols_with_default(1, 1, opencv::core::CV_32FC3, Scalar::all(0.5))
            .unwrap();
        assert!(mat_to_rgb_frame(&f).is_err());
    }

    #[test]
    fn a_roi_view_converts() {
        let m = Mat::new_rows_cols_with_default(4, 4, CV_8UC3, Scalar::new(1.0, 2.0, 3.0, 0.0))
            .unwrap();
        let roi = Mat::roi(&m, opencv::core::Rect::new(1, 1, 2, 2)).unwrap();
        let f = mat_to_rgb_frame(&roi).unwrap();
        assert_eq!((f.width(), f.height()), (2, 2));
        assert!(f.rgb().chunks(3).all(|p| p == [3, 2, 1]));
    }

    #[test]
    fn missing_file_fails_to_open_without_panic() {
        let mut s = OpenCvSource::from_url("/nonexistent/clip.mp4").unwrap();
        assert!(matches!(s.open(), Err(CaptureError::Open { .. })));
        assert!(matches!(s.read(), Err(CaptureError::NotOpen(_))));
        s.close();
    }
}
