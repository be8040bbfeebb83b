//! Photo container formats, told apart by their first bytes (a pure function of the bytes).
//!
//! rollcall decodes JPEG, PNG and WebP. Phones also save HEIC (iPhones by default) and AVIF,
//! which no decoder available to this build can read; those are recognised here so that every
//! place that takes a photo (the CLI, the API, the staff app) refuses them by name and says
//! what to do, instead of "unrecognised file".

use std::fmt;

/// The container format a photo's bytes declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoFormat {
    Jpeg,
    Png,
    WebP,
    /// HEIF with HEVC coding (`ftyp` brands `heic`, `heix`, `mif1`, …): iPhone photos.
    Heic,
    /// HEIF with AV1 coding (`ftyp` brands `avif`, `avis`).
    Avif,
    /// Anything else (including empty input).
    Other,
}

impl PhotoFormat {
    /// The format declared by the first bytes of `bytes` (magic numbers; nothing is decoded).
    pub fn sniff(bytes: &[u8]) -> PhotoFormat {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            PhotoFormat::Jpeg
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            PhotoFormat::Png
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            PhotoFormat::WebP
        } else {
            heif_kind(bytes).unwrap_or(PhotoFormat::Other)
        }
    }

    /// The format a MIME type names (parameters and case ignored), when it is a photo format.
    pub fn from_mime(mime: &str) -> Option<PhotoFormat> {
        let base = mime.split(';').next().unwrap_or("").trim();
        Some(match base.to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => PhotoFormat::Jpeg,
            "image/png" => PhotoFormat::Png,
            "image/webp" => PhotoFormat::WebP,
            "image/heic" | "image/heif" | "image/heic-sequence" | "image/heif-sequence" => {
                PhotoFormat::Heic
            }
            "image/avif" | "image/avif-sequence" => PhotoFormat::Avif,
            _ => return None,
        })
    }

    /// True for the formats rollcall decodes (JPEG, PNG, WebP).
    pub fn is_decodable(self) -> bool {
        matches!(
            self,
            PhotoFormat::Jpeg | PhotoFormat::Png | PhotoFormat::WebP
        )
    }

    /// True for the phone formats that are recognised but cannot be decoded (HEIC, AVIF).
    pub fn needs_conversion(self) -> bool {
        matches!(self, PhotoFormat::Heic | PhotoFormat::Avif)
    }

    /// What to do with a photo of a format that [`needs_conversion`](Self::needs_conversion)
    /// (English; the staff app has its own zh-CN words for it).
    pub fn conversion_advice(self) -> &'static str {
        match self {
            PhotoFormat::Heic => {
                "export it as JPEG or WebP (an iPhone saves JPEG under Settings > Camera > \
                 Formats > Most Compatible)"
            }
            _ => "export it as JPEG or WebP",
        }
    }

    /// The name people know the format by.
    pub fn name(self) -> &'static str {
        match self {
            PhotoFormat::Jpeg => "JPEG",
            PhotoFormat::Png => "PNG",
            PhotoFormat::WebP => "WebP",
            PhotoFormat::Heic => "HEIC",
            PhotoFormat::Avif => "AVIF",
            PhotoFormat::Other => "unknown",
        }
    }
}

impl fmt::Display for PhotoFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HEIF family (ISO base media file with an `ftyp` box first): AVIF when any brand says AV1,
/// else HEIC when any brand is an HEVC or generic HEIF image brand.
fn heif_kind(bytes: &[u8]) -> Option<PhotoFormat> {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    // The box's own size bounds the brand list (a box of size 0 or 1 is not a valid ftyp).
    let end = size.clamp(16, 4096).min(bytes.len());
    // major brand at 8..12, minor version at 12..16, compatible brands from 16.
    let brands = std::iter::once(&bytes[8..12]).chain(bytes[16..end].chunks_exact(4));
    let (mut avif, mut heic) = (false, false);
    for b in brands {
        match b {
            b"avif" | b"avis" => avif = true,
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"hevm" | b"hevs"
            | b"mif1" | b"msf1" => heic = true,
            _ => {}
        }
    }
    if avif {
        Some(PhotoFormat::Avif)
    } else if heic {
        Some(PhotoFormat::Heic)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp(major: &[u8; 4], compat: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compat.len() as u32;
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&[0, 0, 0, 0]);
        for c in compat {
            v.extend_from_slice(*c);
        }
        v.extend_from_slice(b"\0\0\0\x08meta");
        v
    }

    #[test]
    fn magic_numbers() {
        assert_eq!(
            PhotoFormat::sniff(b"\xFF\xD8\xFF\xE0rest"),
            PhotoFormat::Jpeg
        );
        assert_eq!(
            PhotoFormat::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"),
            PhotoFormat::Png
        );
        assert_eq!(
            PhotoFormat::sniff(b"RIFF\x10\0\0\0WEBPVP8 "),
            PhotoFormat::WebP
        );
        assert_eq!(
            PhotoFormat::sniff(b"RIFF\x10\0\0\0WAVEfmt "),
            PhotoFormat::Other
        );
        assert_eq!(PhotoFormat::sniff(b"GIF89a"), PhotoFormat::Other);
        assert_eq!(PhotoFormat::sniff(b""), PhotoFormat::Other);
    }

    #[test]
    fn heif_brands() {
        assert_eq!(
            PhotoFormat::sniff(&ftyp(b"heic", &[b"mif1", b"heic"])),
            PhotoFormat::Heic
        );
        assert_eq!(
            PhotoFormat::sniff(&ftyp(b"mif1", &[b"heic"])),
            PhotoFormat::Heic
        );
        assert_eq!(
            PhotoFormat::sniff(&ftyp(b"avif", &[b"mif1", b"miaf"])),
            PhotoFormat::Avif
        );
        // A generic HEIF major brand carrying AV1 is AVIF.
        assert_eq!(
            PhotoFormat::sniff(&ftyp(b"mif1", &[b"avif", b"miaf"])),
            PhotoFormat::Avif
        );
        // An MP4 video is not a photo format.
        assert_eq!(
            PhotoFormat::sniff(&ftyp(b"isom", &[b"iso2", b"mp41"])),
            PhotoFormat::Other
        );
        // Brands beyond the declared box size are not read; a short file is no panic.
        let mut v = ftyp(b"isom", &[]);
        v.extend_from_slice(b"heic");
        assert_eq!(PhotoFormat::sniff(&v), PhotoFormat::Other);
        assert_eq!(
            PhotoFormat::sniff(b"\0\0\0\x18ftypheic"),
            PhotoFormat::Other
        );
    }

    #[test]
    fn mime_types() {
        assert_eq!(
            PhotoFormat::from_mime("image/HEIC"),
            Some(PhotoFormat::Heic)
        );
        assert_eq!(
            PhotoFormat::from_mime("image/webp; q=1"),
            Some(PhotoFormat::WebP)
        );
        assert_eq!(
            PhotoFormat::from_mime("image/avif"),
            Some(PhotoFormat::Avif)
        );
        assert_eq!(PhotoFormat::from_mime("text/plain"), None);
        assert!(PhotoFormat::Heic.needs_conversion() && !PhotoFormat::Heic.is_decodable());
        assert!(PhotoFormat::WebP.is_decodable() && !PhotoFormat::WebP.needs_conversion());
    }
}
