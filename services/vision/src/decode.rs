//! Image decoding with limits checked before any pixel buffer is allocated.

use crate::VisionError;
use image::{ImageDecoder, ImageFormat, ImageReader, Limits};
use rollcall_domain::photo::PhotoFormat;
use rollcall_domain::Frame;
use std::io::Cursor;
use std::path::Path;

/// Limits applied to every decoded image.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted encoded input, in bytes.
    pub max_bytes: u64,
    /// Largest accepted width × height (declared in the header; refused before decoding).
    pub max_pixels: u64,
    /// Largest side.
    pub max_side: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_pixels: 40_000_000,
            max_side: 16_384,
        }
    }
}

/// Reads and decodes an image file into RGB.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<Frame, VisionError> {
    let io = |source| VisionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > limits.max_bytes {
        return Err(VisionError::InputTooLarge {
            limit: limits.max_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    decode_bytes(&bytes, limits)
}

/// Decodes JPEG, PNG or WebP bytes into 8-bit RGB: 16-bit, grey, grey+alpha and RGBA inputs
/// are converted (alpha dropped), EXIF orientation is applied. The declared size is checked
/// before decoding, so a decompression bomb is refused without allocating its pixels. HEIC and
/// AVIF photos are recognised and refused by name ([`VisionError::NeedsConversion`]).
pub fn decode_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<Frame, VisionError> {
    if bytes.len() as u64 > limits.max_bytes {
        return Err(VisionError::InputTooLarge {
            limit: limits.max_bytes,
        });
    }
    let sniffed = PhotoFormat::sniff(bytes);
    if sniffed.needs_conversion() {
        return Err(VisionError::NeedsConversion { format: sniffed });
    }
    let format = image::guess_format(bytes)
        .map_err(|_| VisionError::UnsupportedFormat("unrecognised file signature".into()))?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
    ) {
        return Err(VisionError::UnsupportedFormat(format!("{format:?}")));
    }
    if format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        // Decoders pad a truncated scan with grey and report success; a cut upload must not
        // become a half-grey face.
        return Err(VisionError::CorruptImage(
            "truncated JPEG: no end-of-image marker after the last scan".into(),
        ));
    }
    if format == ImageFormat::WebP {
        webp_is_complete(bytes)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    // 4 bytes per pixel at 16 bits per channel RGBA = 8 bytes; leave room for one conversion.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(16));
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(map_image_err)?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(VisionError::EmptyImage);
    }
    if (w as u64) * (h as u64) > limits.max_pixels || w > limits.max_side || h > limits.max_side {
        return Err(VisionError::ImageTooLarge {
            width: w,
            height: h,
            max_pixels: limits.max_pixels,
        });
    }
    let orientation = decoder.orientation().ok();
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(map_image_err)?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    Frame::from_rgb(w, h, rgb.into_raw()).map_err(|e| VisionError::CorruptImage(e.to_string()))
}

/// A WebP file is one RIFF chunk holding chunks, each with its declared length. A file shorter
/// than its RIFF header declares was cut (an interrupted upload or copy), and a chunk reaching
/// past its container is corrupt: both are refused before the decoder sees them, which also
/// keeps the decoder from allocating a buffer of a length the file only declares (it reads
/// metadata chunks, EXIF included, into a buffer of their declared length).
fn webp_is_complete(bytes: &[u8]) -> Result<(), VisionError> {
    let Some(riff) = le32(bytes, 4) else {
        return Err(VisionError::CorruptImage("truncated WebP header".into()));
    };
    let riff_end = riff + 8;
    if (bytes.len() as u64) < riff_end {
        return Err(VisionError::CorruptImage(format!(
            "truncated WebP: {} bytes, its RIFF header declares {riff_end}",
            bytes.len()
        )));
    }
    webp_chunks_fit(bytes, 12, riff_end, 0)
}

/// Every chunk between `start` and `end` ends inside it; animation frames (`ANMF`: a 16-byte
/// frame header, then chunks) are walked too.
fn webp_chunks_fit(bytes: &[u8], start: u64, end: u64, depth: u8) -> Result<(), VisionError> {
    let mut at = start;
    while at + 8 <= end {
        let (Some(fourcc), Some(size)) = (
            bytes.get(at as usize..at as usize + 4),
            le32(bytes, at as usize + 4),
        ) else {
            break;
        };
        let chunk_end = at + 8 + size;
        if chunk_end > end {
            return Err(VisionError::CorruptImage(format!(
                "truncated WebP: its {} chunk declares {size} bytes, {} remain",
                String::from_utf8_lossy(fourcc).trim_end(),
                end - at - 8
            )));
        }
        if fourcc == b"ANMF" && depth == 0 && size >= 16 {
            webp_chunks_fit(bytes, at + 8 + 16, chunk_end, depth + 1)?;
        }
        at = chunk_end + (size & 1);
    }
    Ok(())
}

fn le32(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
}

/// True when an end-of-image marker (FF D9) follows the last start-of-scan (FF DA). Inside
/// entropy-coded data a literal FF is stuffed as FF 00, so FF D9 there is a real marker; EXIF
/// thumbnails end before the main image's scan starts.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_sos, last_eoi), (Some(s), Some(e)) if e > s)
}

fn map_image_err(e: image::ImageError) -> VisionError {
    use image::ImageError as E;
    match e {
        E::Limits(l) => VisionError::InvalidInput(format!("image exceeds decoding limits: {l}")),
        E::Unsupported(u) => VisionError::UnsupportedFormat(u.to_string()),
        E::Decoding(d) => VisionError::CorruptImage(d.to_string()),
        E::IoError(io) => VisionError::CorruptImage(io.to_string()),
        other => VisionError::CorruptImage(other.to_string()),
    }
}

/// Encodes an RGB frame as PNG (annotations, crops).
pub fn encode_png(frame: &Frame) -> Result<Vec<u8>, VisionError> {
    let img = image::RgbImage::from_raw(frame.width(), frame.height(), frame.rgb().to_vec())
        .ok_or_else(|| VisionError::InvalidInput("frame buffer size".into()))?;
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| VisionError::InvalidInput(e.to_string()))?;
    Ok(out.into_inner())
}

/// Encodes an RGB frame as JPEG at the given quality (crops kept for review).
pub fn encode_jpeg(frame: &Frame, quality: u8) -> Result<Vec<u8>, VisionError> {
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    enc.encode(
        frame.rgb(),
        frame.width(),
        frame.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| VisionError::InvalidInput(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(img: image::DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn not_an_image() {
        let e = decode_bytes(
            b"hello, this is text and not a picture",
            &DecodeLimits::default(),
        )
        .unwrap_err();
        assert!(matches!(e, VisionError::UnsupportedFormat(_)), "{e}");
        let e = decode_bytes(&[], &DecodeLimits::default()).unwrap_err();
        assert!(matches!(e, VisionError::UnsupportedFormat(_)), "{e}");
    }

    #[test]
    fn sixteen_bit_rgba_and_grey_become_rgb8() {
        let img16 = image::DynamicImage::ImageRgba16(image::ImageBuffer::from_pixel(
            7,
            5,
            image::Rgba([65535u16, 0, 32768, 65535]),
        ));
        let f = decode_bytes(&png_bytes(img16), &DecodeLimits::default()).unwrap();
        assert_eq!((f.width(), f.height()), (7, 5));
        assert_eq!(&f.rgb()[..3], &[255, 0, 128]);
        let grey = image::DynamicImage::ImageLuma8(image::ImageBuffer::from_pixel(
            3,
            2,
            image::Luma([77u8]),
        ));
        let f = decode_bytes(&png_bytes(grey), &DecodeLimits::default()).unwrap();
        assert_eq!(f.rgb(), &[77u8; 18][..]);
    }

    #[test]
    fn decompression_bomb_refused_before_allocation() {
        // A valid PNG header declaring 100000 x 100000 pixels with almost no data.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&(ihdr.len() as u32).to_be_bytes());
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&ihdr);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        let e = decode_bytes(&png, &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(
                e,
                VisionError::ImageTooLarge { .. } | VisionError::InvalidInput(_)
            ),
            "{e}"
        );
    }

    #[test]
    fn oversized_input_refused() {
        let lim = DecodeLimits {
            max_bytes: 10,
            ..Default::default()
        };
        assert!(matches!(
            decode_bytes(&[0u8; 11], &lim),
            Err(VisionError::InputTooLarge { .. })
        ));
    }

    #[test]
    fn truncated_jpeg_is_an_error() {
        let img = image::DynamicImage::ImageRgb8(image::ImageBuffer::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, 90])
        }));
        let mut full = Vec::new();
        img.write_to(&mut Cursor::new(&mut full), ImageFormat::Jpeg)
            .unwrap();
        assert!(decode_bytes(&full, &DecodeLimits::default()).is_ok());
        for cut in [full.len() / 2, full.len() - 2, 200] {
            let e = decode_bytes(&full[..cut], &DecodeLimits::default()).unwrap_err();
            assert!(matches!(e, VisionError::CorruptImage(_)), "cut {cut}: {e}");
        }
    }

    #[test]
    fn zero_sized_png_is_an_error() {
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&0u32.to_be_bytes());
        chunk.extend_from_slice(&10u32.to_be_bytes());
        chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        let e = decode_bytes(&png, &DecodeLimits::default()).unwrap_err();
        assert!(
            matches!(e, VisionError::EmptyImage | VisionError::CorruptImage(_)),
            "{e}"
        );
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
