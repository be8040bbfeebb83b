//! A decoded video frame or still image: tightly packed 8-bit RGB, row-major.

/// An RGB image owned in memory. Capture produces it, vision consumes it; neither knows the other.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

/// The buffer does not match the declared size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame buffer has {got} bytes, {width}x{height} RGB needs {want}")]
pub struct FrameSizeError {
    pub width: u32,
    pub height: u32,
    pub got: usize,
    pub want: usize,
}

impl Frame {
    pub fn from_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Result<Self, FrameSizeError> {
        let want = width as usize * height as usize * 3;
        if rgb.len() != want {
            return Err(FrameSizeError {
                width,
                height,
                got: rgb.len(),
                want,
            });
        }
        Ok(Self { width, height, rgb })
    }
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }
    pub fn into_rgb(self) -> Vec<u8> {
        self.rgb
    }
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}
