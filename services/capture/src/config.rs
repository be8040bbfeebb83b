//! Per-camera configuration and source-URL classification.

use crate::CaptureError;
use rollcall_domain::{CameraId, CampusId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One camera, as written in the `[[cameras]]` tables of `rollcall.toml`.
///
/// ```toml
/// [[cameras]]
/// id = "lobby-1"
/// url = "rtsp://user:secret@10.0.0.12/stream1"
/// campus = "north"
/// door = "front"
/// fps = 10
/// stale_timeout_ms = 5000
/// reconnect = { initial_ms = 500, max_ms = 30000 }
/// ```
///
/// `url` may be a video file path, `file://` URL, `rtsp://`/`rtsps://` URL, `http(s)://` MJPEG
/// URL, a device index (`"0"`), a device path (`/dev/video0`), or a directory of JPEG/PNG images
/// (an existing directory, or any path prefixed with `folder:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique camera id; events and frames carry it.
    pub id: CameraId,
    /// Where frames come from (see the type-level docs). May contain credentials: never log it
    /// unredacted, use [`CameraConfig::redacted_url`].
    pub url: String,
    /// Two streams per camera, as NVRs offer them: the small substream (e.g. 640×360) faces are
    /// found and tracked in. `url` is then the main stream, from which the face crops for
    /// recognition are cut at the matching instant (the newest main frame within
    /// `pair_tolerance_ms` of the substream frame; without one the substream frame is used
    /// alone). Unset: `url` does both. May contain credentials, like `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect_url: Option<String>,
    /// Largest gap between a substream frame and the main frame its crops are cut from.
    #[serde(default = "default_pair_tolerance_ms")]
    pub pair_tolerance_ms: u64,
    /// Campus the camera belongs to.
    pub campus: CampusId,
    /// Door or area name the camera watches (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub door: Option<String>,
    /// Frame-rate cap. Live sources are read at their own pace and frames arriving faster than
    /// the cap are skipped (counted in `frames_skipped`); finite sources (files, image folders)
    /// are paced to it. `None`: no cap. Image folders use it as their frame rate
    /// ([`DEFAULT_FOLDER_FPS`] when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// Finite sources only: play at the source's own frame rate (a video file's fps, an image
    /// folder's), like a live camera would deliver it, never faster than `fps`. `false`: read as
    /// fast as frames decode (still capped by `fps`); with latest-frame-wins a slow consumer then
    /// sees only a sample of the frames.
    #[serde(default = "default_true")]
    pub realtime: bool,
    /// Disabled cameras are skipped by [`spawn_cameras`](crate::spawn_cameras).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// For finite sources: start again from the beginning at the end instead of reporting
    /// [`CameraHealth::Ended`](crate::CameraHealth::Ended).
    #[serde(default, rename = "loop")]
    pub loop_source: bool,
    /// Reconnect backoff.
    #[serde(default)]
    pub reconnect: BackoffConfig,
    /// A stream that delivers no frame for this long is reported
    /// [`Stale`](crate::CameraHealth::Stale); one silent for twice this long is dropped and
    /// reconnected.
    #[serde(default = "default_stale_ms")]
    pub stale_timeout_ms: u64,
}

/// Image folders advance at this many frames per second when no `fps` is configured.
pub const DEFAULT_FOLDER_FPS: f64 = 10.0;

/// Upper bound accepted for the stale timeout and the reconnect delays (one hour).
pub const MAX_CONFIG_MS: u64 = 3_600_000;

fn default_true() -> bool {
    true
}
fn default_stale_ms() -> u64 {
    5_000
}
fn default_pair_tolerance_ms() -> u64 {
    250
}

/// Exponential reconnect backoff: the n-th consecutive attempt waits
/// `min(initial × 2^(n-1), max)`. Reset after a frame has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// Wait before the first reconnect attempt, in milliseconds.
    #[serde(default = "default_initial_ms")]
    pub initial_ms: u64,
    /// Largest wait between attempts, in milliseconds.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
}

fn default_initial_ms() -> u64 {
    500
}
fn default_max_ms() -> u64 {
    30_000
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial_ms: default_initial_ms(),
            max_ms: default_max_ms(),
        }
    }
}

impl BackoffConfig {
    /// Delay before reconnect attempt `attempt` (1-based; 0 is treated as 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(32);
        let ms = self
            .initial_ms
            .saturating_mul(1u64 << shift)
            .min(self.max_ms);
        Duration::from_millis(ms)
    }
}

impl CameraConfig {
    /// A config with the defaults for everything but id, url and campus.
    pub fn new(id: CameraId, url: impl Into<String>, campus: CampusId) -> Self {
        Self {
            id,
            url: url.into(),
            detect_url: None,
            pair_tolerance_ms: default_pair_tolerance_ms(),
            campus,
            door: None,
            fps: None,
            realtime: true,
            enabled: true,
            loop_source: false,
            reconnect: BackoffConfig::default(),
            stale_timeout_ms: default_stale_ms(),
        }
    }

    /// Checks values serde cannot: positive finite fps, a sane backoff, a non-zero stale timeout
    /// (see [`validate_settings`](Self::validate_settings)), and a recognised URL.
    pub fn validate(&self) -> Result<(), CaptureError> {
        self.validate_settings()?;
        if let Some(d) = &self.detect_url {
            SourceSpec::parse(d)?;
        }
        SourceSpec::parse(&self.url).map(|_| ())
    }

    /// The main stream of a two-stream camera (`url`) as a camera of its own: same settings,
    /// no `detect_url`. `None` for a one-stream camera.
    pub fn main_stream(&self) -> Option<CameraConfig> {
        self.detect_url.as_ref()?;
        Some(CameraConfig {
            detect_url: None,
            ..self.clone()
        })
    }

    /// The stream faces are found in: `detect_url` when set, else `url`.
    pub fn detect_stream_url(&self) -> &str {
        self.detect_url.as_deref().unwrap_or(&self.url)
    }

    /// Whether a substream frame and a main frame are close enough in time to pair.
    pub fn pair_tolerance(&self) -> Duration {
        Duration::from_millis(self.pair_tolerance_ms)
    }

    /// Like [`validate`](Self::validate) but ignores the URL: fps in [0.01, 1000], reconnect delays
    /// in 1 ms ..= [`MAX_CONFIG_MS`] with `initial_ms <= max_ms`, stale timeout in
    /// 1 ms ..= [`MAX_CONFIG_MS`].
    pub fn validate_settings(&self) -> Result<(), CaptureError> {
        let bad = |why: String| Err(CaptureError::Config(format!("camera {}: {why}", self.id)));
        if let Some(fps) = self.fps {
            if !(0.01..=1000.0).contains(&fps) {
                return bad(format!("fps must be in [0.01, 1000], got {fps}"));
            }
        }
        if self.reconnect.initial_ms == 0 {
            return bad("reconnect.initial_ms must be > 0".into());
        }
        if self.reconnect.max_ms < self.reconnect.initial_ms {
            return bad(format!(
                "reconnect.max_ms ({}) is below reconnect.initial_ms ({})",
                self.reconnect.max_ms, self.reconnect.initial_ms
            ));
        }
        if self.reconnect.max_ms > MAX_CONFIG_MS {
            return bad(format!("reconnect.max_ms must be <= {MAX_CONFIG_MS}"));
        }
        if self.stale_timeout_ms == 0 || self.stale_timeout_ms > MAX_CONFIG_MS {
            return bad(format!("stale_timeout_ms must be in 1..={MAX_CONFIG_MS}"));
        }
        if self.pair_tolerance_ms > MAX_CONFIG_MS {
            return bad(format!("pair_tolerance_ms must be <= {MAX_CONFIG_MS}"));
        }
        Ok(())
    }

    /// The URL with any password replaced by `***`, safe to log.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The stale timeout as a duration.
    pub fn stale_timeout(&self) -> Duration {
        Duration::from_millis(self.stale_timeout_ms)
    }
}

/// What kind of source a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A video file, read through OpenCV's FFmpeg backend. Finite.
    File(PathBuf),
    /// A directory of JPEG/PNG images, read in file-name order. Finite.
    Folder(PathBuf),
    /// `rtsp://` or `rtsps://`, through FFmpeg. Live.
    Rtsp(String),
    /// `http://` or `https://` (MJPEG or anything FFmpeg reads). Live.
    Http(String),
    /// A local capture device by index (`"0"`). Live.
    DeviceIndex(i32),
    /// A local capture device by path (`/dev/video0`). Live.
    DevicePath(PathBuf),
}

impl SourceSpec {
    /// Classifies a camera URL. Looks at the filesystem only to tell a directory from a file.
    pub fn parse(url: &str) -> Result<Self, CaptureError> {
        let unsupported = |why: &str| CaptureError::UnsupportedSource {
            url: redact_url(url),
            why: why.to_string(),
        };
        let url = url.trim();
        if url.is_empty() {
            return Err(unsupported("empty url"));
        }
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            return Ok(SourceSpec::Rtsp(url.to_string()));
        }
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(SourceSpec::Http(url.to_string()));
        }
        if let Some(rest) = url.strip_prefix("folder:") {
            if rest.is_empty() {
                return Err(unsupported("empty folder path"));
            }
            return Ok(SourceSpec::Folder(PathBuf::from(rest)));
        }
        if url.bytes().all(|b| b.is_ascii_digit()) {
            return url
                .parse::<i32>()
                .map(SourceSpec::DeviceIndex)
                .map_err(|_| unsupported("device index out of range"));
        }
        if url.starts_with("/dev/") {
            return Ok(SourceSpec::DevicePath(PathBuf::from(url)));
        }
        let path = match url.strip_prefix("file://") {
            Some(p) => p,
            None => {
                if let Some((scheme, _)) = url.split_once("://") {
                    return Err(unsupported(&format!("unknown scheme {scheme:?}")));
                }
                url
            }
        };
        let path = Path::new(path);
        if path.is_dir() {
            Ok(SourceSpec::Folder(path.to_path_buf()))
        } else {
            Ok(SourceSpec::File(path.to_path_buf()))
        }
    }

    /// Finite sources end; live ones are reconnected when they stop.
    pub fn is_live(&self) -> bool {
        !matches!(self, SourceSpec::File(_) | SourceSpec::Folder(_))
    }
}

/// Replaces the password of `scheme://user:password@host/...` with `***`. Other strings are
/// returned unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let redacted_userinfo = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_string()
    };
    format!(
        "{}{}{}",
        &url[..scheme_end + 3],
        redacted_userinfo,
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = BackoffConfig {
            initial_ms: 100,
            max_ms: 1000,
        };
        let d: Vec<u64> = (1..=7).map(|n| b.delay(n).as_millis() as u64).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(b.delay(0).as_millis(), 100);
        assert_eq!(b.delay(u32::MAX).as_millis(), 1000);
    }

    #[test]
    fn urls_are_classified() {
        assert_eq!(
            SourceSpec::parse("rtsp://cam/1").unwrap(),
            SourceSpec::Rtsp("rtsp://cam/1".into())
        );
        assert!(matches!(
            SourceSpec::parse("HTTP://cam/x.mjpg").unwrap(),
            SourceSpec::Http(_)
        ));
        assert_eq!(SourceSpec::parse("0").unwrap(), SourceSpec::DeviceIndex(0));
        assert_eq!(
            SourceSpec::parse("/dev/video2").unwrap(),
            SourceSpec::DevicePath("/dev/video2".into())
        );
        assert_eq!(
            SourceSpec::parse("file:///tmp/a.mp4").unwrap(),
            SourceSpec::File("/tmp/a.mp4".into())
        );
        assert_eq!(
            SourceSpec::parse("folder:/tmp/imgs").unwrap(),
            SourceSpec::Folder("/tmp/imgs".into())
        );
        let dir = std::env::temp_dir();
        assert_eq!(
            SourceSpec::parse(dir.to_str().unwrap()).unwrap(),
            SourceSpec::Folder(dir.clone())
        );
        assert!(SourceSpec::parse("").is_err());
        assert!(SourceSpec::parse("ftp://x/y").is_err());
        assert!(SourceSpec::parse("99999999999999").is_err());
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("rtsp://admin:hunter2@10.0.0.5:554/s?x=1"),
            "rtsp://admin:***@10.0.0.5:554/s?x=1"
        );
        assert_eq!(redact_url("http://token@cam/x"), "http://***@cam/x");
        assert_eq!(redact_url("http://cam/a@b"), "http://cam/a@b");
        assert_eq!(redact_url("/videos/a.mp4"), "/videos/a.mp4");
        let e = SourceSpec::parse("ftp://u:pw@h/x").unwrap_err().to_string();
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn config_from_toml_denies_unknown_fields_and_validates() {
        let c: CameraConfig = toml::from_str(
            r#"
            id = "lobby-1"
            url = "rtsp://u:p@cam/1"
            campus = "north"
            door = "front"
            fps = 8
            loop = true
            stale_timeout_ms = 2000
            reconnect = { initial_ms = 250, max_ms = 4000 }
            "#,
        )
        .unwrap();
        assert_eq!(c.id.as_str(), "lobby-1");
        assert_eq!(c.fps, Some(8.0));
        assert!(c.enabled && c.loop_source && c.realtime);
        assert_eq!(c.reconnect.delay(10), Duration::from_millis(4000));
        c.validate().unwrap();
        assert!(!c.redacted_url().contains(":p@"));

        let unknown =
            toml::from_str::<CameraConfig>("id = \"a\"\nurl = \"0\"\ncampus = \"n\"\nfsp = 3\n");
        assert!(unknown.is_err());

        let mut bad = c.clone();
        bad.fps = Some(0.0);
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.reconnect.max_ms = 10;
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.stale_timeout_ms = 0;
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.stale_timeout_ms = u64::MAX;
        assert!(bad.validate().is_err());
        let mut bad = c.clone();
        bad.reconnect.max_ms = u64::MAX;
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.fps = Some(f64::NAN);
        assert!(bad.validate_settings().is_err());
    }
}
