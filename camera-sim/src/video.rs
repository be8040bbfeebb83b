//! A video file: Motion-JPEG in an AVI (RIFF) container, written frame by frame.
//!
//! MJPEG-in-AVI is what IP cameras and capture cards record, and every player and OpenCV's
//! `VideoCapture` read it without extra codecs; the frames are the same JPEGs as the image
//! sequence, so the video holds exactly the pixels the ground truth describes. The layout:
//! `RIFF AVI { LIST hdrl { avih, LIST strl { strh, strf } }, LIST movi { 00dc… }, idx1 }`;
//! the sizes and frame counts are patched in when the file is finished.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Errors of [`AviWriter`].
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid video: {0}")]
    Invalid(String),
}

const AVIF_HASINDEX: u32 = 0x10;
const AVIIF_KEYFRAME: u32 = 0x10;

/// Writes a Motion-JPEG AVI file.
pub struct AviWriter {
    path: PathBuf,
    out: BufWriter<File>,
    width: u32,
    height: u32,
    /// (offset from the `movi` fourcc, size) of each frame.
    index: Vec<(u32, u32)>,
    movi_fourcc_pos: u64,
    max_frame: u32,
    // positions of the fields patched by `finish`
    riff_size_pos: u64,
    avih_frames_pos: u64,
    avih_buffer_pos: u64,
    strh_length_pos: u64,
    strh_buffer_pos: u64,
    movi_size_pos: u64,
}

impl AviWriter {
    /// Creates `path` for `width`×`height` frames at `fps` frames per second.
    pub fn create(path: &Path, width: u32, height: u32, fps: u32) -> Result<Self, VideoError> {
        if width == 0 || height == 0 || fps == 0 {
            return Err(VideoError::Invalid(format!(
                "{width}x{height} at {fps} fps: every value must be positive"
            )));
        }
        let io = |source| VideoError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::create(path).map_err(io)?;
        let mut w = AviWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            width,
            height,
            index: Vec::new(),
            movi_fourcc_pos: 0,
            max_frame: 0,
            riff_size_pos: 0,
            avih_frames_pos: 0,
            avih_buffer_pos: 0,
            strh_length_pos: 0,
            strh_buffer_pos: 0,
            movi_size_pos: 0,
        };
        w.header(fps).map_err(io)?;
        Ok(w)
    }

    fn header(&mut self, fps: u32) -> std::io::Result<()> {
        let (width, height) = (self.width, self.height);
        let o = &mut self.out;
        o.write_all(b"RIFF")?;
        self.riff_size_pos = 4;
        o.write_all(&0u32.to_le_bytes())?;
        o.write_all(b"AVI ")?;
        // LIST hdrl: 4 (hdrl) + avih (8+56) + LIST strl (8 + 4 + strh (8+56) + strf (8+40))
        let strl_size = 4 + (8 + 56) + (8 + 40);
        let hdrl_size = 4 + (8 + 56) + (8 + strl_size);
        o.write_all(b"LIST")?;
        o.write_all(&(hdrl_size as u32).to_le_bytes())?;
        o.write_all(b"hdrl")?;
        // avih
        o.write_all(b"avih")?;
        o.write_all(&56u32.to_le_bytes())?;
        let le = |v: u32| v.to_le_bytes();
        o.write_all(&le(1_000_000 / fps))?; // dwMicroSecPerFrame
        o.write_all(&le(0))?; // dwMaxBytesPerSec
        o.write_all(&le(0))?; // dwPaddingGranularity
        o.write_all(&le(AVIF_HASINDEX))?; // dwFlags
        self.avih_frames_pos = 12 + 12 + 8 + 16;
        o.write_all(&le(0))?; // dwTotalFrames (patched)
        o.write_all(&le(0))?; // dwInitialFrames
        o.write_all(&le(1))?; // dwStreams
        self.avih_buffer_pos = self.avih_frames_pos + 12;
        o.write_all(&le(0))?; // dwSuggestedBufferSize (patched)
        o.write_all(&le(width))?;
        o.write_all(&le(height))?;
        o.write_all(&[0u8; 16])?; // dwReserved[4]
                                  // LIST strl
        o.write_all(b"LIST")?;
        o.write_all(&(strl_size as u32).to_le_bytes())?;
        o.write_all(b"strl")?;
        let strh_data = 12 + 12 + 8 + 56 + 12 + 8;
        o.write_all(b"strh")?;
        o.write_all(&56u32.to_le_bytes())?;
        o.write_all(b"vids")?;
        o.write_all(b"MJPG")?;
        o.write_all(&le(0))?; // dwFlags
        o.write_all(&[0u8; 4])?; // wPriority, wLanguage
        o.write_all(&le(0))?; // dwInitialFrames
        o.write_all(&le(1))?; // dwScale
        o.write_all(&le(fps))?; // dwRate
        o.write_all(&le(0))?; // dwStart
        self.strh_length_pos = strh_data as u64 + 32;
        o.write_all(&le(0))?; // dwLength (patched)
        self.strh_buffer_pos = self.strh_length_pos + 4;
        o.write_all(&le(0))?; // dwSuggestedBufferSize (patched)
        o.write_all(&le(u32::MAX))?; // dwQuality: default
        o.write_all(&le(0))?; // dwSampleSize
        o.write_all(&0u16.to_le_bytes())?; // rcFrame
        o.write_all(&0u16.to_le_bytes())?;
        o.write_all(&(width.min(u16::MAX as u32) as u16).to_le_bytes())?;
        o.write_all(&(height.min(u16::MAX as u32) as u16).to_le_bytes())?;
        // strf: BITMAPINFOHEADER
        o.write_all(b"strf")?;
        o.write_all(&40u32.to_le_bytes())?;
        o.write_all(&le(40))?;
        o.write_all(&le(width))?;
        o.write_all(&le(height))?;
        o.write_all(&1u16.to_le_bytes())?; // biPlanes
        o.write_all(&24u16.to_le_bytes())?; // biBitCount
        o.write_all(b"MJPG")?; // biCompression
        o.write_all(&le(width.saturating_mul(height).saturating_mul(3)))?;
        o.write_all(&[0u8; 16])?; // pels per metre, colours used/important
                                  // LIST movi
        let movi_list_pos = 12 + 8 + hdrl_size as u64;
        o.write_all(b"LIST")?;
        self.movi_size_pos = movi_list_pos + 4;
        o.write_all(&le(0))?; // size (patched)
        self.movi_fourcc_pos = movi_list_pos + 8;
        o.write_all(b"movi")?;
        debug_assert_eq!(self.strh_length_pos, 12 + 8 + 4 + 8 + 56 + 12 + 8 + 32);
        Ok(())
    }

    fn io(&self) -> impl Fn(std::io::Error) -> VideoError + '_ {
        move |source| VideoError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one frame (a complete JPEG of the video's size).
    pub fn push_jpeg(&mut self, jpeg: &[u8]) -> Result<(), VideoError> {
        if jpeg.len() < 4 || jpeg[0..2] != [0xFF, 0xD8] {
            return Err(VideoError::Invalid("a frame must be a JPEG".into()));
        }
        let size = u32::try_from(jpeg.len())
            .map_err(|_| VideoError::Invalid("frame larger than 4 GiB".into()))?;
        let pos = self.out.stream_position().map_err(self.io())?;
        let offset = u32::try_from(pos - self.movi_fourcc_pos)
            .map_err(|_| VideoError::Invalid("AVI file larger than 4 GiB".into()))?;
        let mut chunk = Vec::with_capacity(8 + jpeg.len() + 1);
        chunk.extend_from_slice(b"00dc");
        chunk.extend_from_slice(&size.to_le_bytes());
        chunk.extend_from_slice(jpeg);
        if jpeg.len() % 2 == 1 {
            chunk.push(0);
        }
        self.out.write_all(&chunk).map_err(self.io())?;
        self.index.push((offset, size));
        self.max_frame = self.max_frame.max(size);
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.index.len()
    }

    /// Writes the index, patches the sizes and counts, and closes the file. Returns its size.
    pub fn finish(mut self) -> Result<u64, VideoError> {
        let movi_end = self.out.stream_position().map_err(self.io())?;
        let mut idx = Vec::with_capacity(8 + 16 * self.index.len());
        idx.extend_from_slice(b"idx1");
        idx.extend_from_slice(&((16 * self.index.len()) as u32).to_le_bytes());
        for (offset, size) in &self.index {
            idx.extend_from_slice(b"00dc");
            idx.extend_from_slice(&AVIIF_KEYFRAME.to_le_bytes());
            idx.extend_from_slice(&offset.to_le_bytes());
            idx.extend_from_slice(&size.to_le_bytes());
        }
        self.out.write_all(&idx).map_err(self.io())?;
        let end = self.out.stream_position().map_err(self.io())?;
        let frames = self.index.len() as u32;
        let buffer = self.max_frame + 8;
        let patches = [
            (self.riff_size_pos, (end - 8) as u32),
            (self.avih_frames_pos, frames),
            (self.avih_buffer_pos, buffer),
            (self.strh_length_pos, frames),
            (self.strh_buffer_pos, buffer),
            (
                self.movi_size_pos,
                (movi_end - self.movi_size_pos - 4) as u32,
            ),
        ];
        for (pos, v) in patches {
            self.out.seek(SeekFrom::Start(pos)).map_err(self.io())?;
            self.out.write_all(&v.to_le_bytes()).map_err(self.io())?;
        }
        self.out.flush().map_err(self.io())?;
        Ok(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], pos: usize) -> u32 {
        u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap())
    }

    #[test]
    fn layout_sizes_and_index_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.avi");
        let mut w = AviWriter::create(&path, 64, 48, 10).unwrap();
        let frames: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let mut f = vec![0xFF, 0xD8];
                f.extend(std::iter::repeat_n(i as u8, 10 + i)); // odd and even sizes
                f.extend([0xFF, 0xD9]);
                f
            })
            .collect();
        for f in &frames {
            w.push_jpeg(f).unwrap();
        }
        assert_eq!(w.frames(), 3);
        let size = w.finish().unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!(b.len() as u64, size);
        assert_eq!(&b[0..4], b"RIFF");
        assert_eq!(u32_at(&b, 4) as usize, b.len() - 8);
        assert_eq!(&b[8..12], b"AVI ");
        // avih total frames, strh length
        let avih = b.windows(4).position(|x| x == b"avih").unwrap();
        assert_eq!(u32_at(&b, avih + 8), 100_000);
        assert_eq!(u32_at(&b, avih + 8 + 16), 3);
        let strh = b.windows(4).position(|x| x == b"strh").unwrap();
        assert_eq!(&b[strh + 8..strh + 16], b"vidsMJPG");
        assert_eq!(u32_at(&b, strh + 8 + 32), 3);
        // every index entry points at a 00dc chunk holding the frame
        let movi = b.windows(4).position(|x| x == b"movi").unwrap();
        let movi_size = u32_at(&b, movi - 4) as usize;
        let idx1 = b.windows(4).position(|x| x == b"idx1").unwrap();
        assert_eq!(movi + movi_size, idx1);
        assert_eq!(u32_at(&b, idx1 + 4), 48);
        for (i, f) in frames.iter().enumerate() {
            let e = idx1 + 8 + 16 * i;
            assert_eq!(&b[e..e + 4], b"00dc");
            let off = u32_at(&b, e + 8) as usize;
            let len = u32_at(&b, e + 12) as usize;
            assert_eq!(len, f.len());
            assert_eq!(&b[movi + off..movi + off + 4], b"00dc");
            assert_eq!(&b[movi + off + 8..movi + off + 8 + len], f.as_slice());
        }
    }

    #[test]
    fn refuses_non_jpeg_frames_and_empty_sizes() {
        let dir = tempfile::tempdir().unwrap();
        assert!(AviWriter::create(&dir.path().join("a.avi"), 0, 48, 10).is_err());
        let mut w = AviWriter::create(&dir.path().join("b.avi"), 64, 48, 10).unwrap();
        assert!(matches!(
            w.push_jpeg(b"not a jpeg"),
            Err(VideoError::Invalid(_))
        ));
        assert_eq!(w.frames(), 0);
    }
}
