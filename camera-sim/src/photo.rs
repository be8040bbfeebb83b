//! Source photos: decoded pixels plus the face box and five landmarks the real detector found.
//!
//! camera-sim does not detect faces itself (it must not depend on the vision crate); the caller
//! supplies a [`FacePhoto`] for every reference of [`crate::Scenario::render_photos`] through a
//! [`PhotoLibrary`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::photo_ref::PhotoRef;
use std::sync::Arc;

use rollcall_domain::face::{BBox, Landmarks};
use rollcall_domain::Frame;

/// A photo could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    /// The file could not be read or decoded.
    #[error("cannot decode photo {}: {message}", path.display())]
    Decode { path: PathBuf, message: String },
    /// The face box or landmarks do not fit the image.
    #[error("photo {what}: {message}")]
    InvalidFace { what: String, message: String },
}

/// A decoded photo with the face to cut out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct FacePhoto {
    /// RGB pixels.
    pub image: Frame,
    /// Face box in image pixels (as a face detector reports it).
    pub face: BBox,
    /// Left eye, right eye, nose, left and right mouth corner, in image pixels.
    pub landmarks: Landmarks,
}

impl FacePhoto {
    /// Checks that the box is a plausible face inside the image and the landmarks are finite.
    pub fn new(image: Frame, face: BBox, landmarks: Landmarks) -> Result<FacePhoto, PhotoError> {
        let bad = |m: &str| PhotoError::InvalidFace {
            what: format!("{}x{}", image.width(), image.height()),
            message: m.to_string(),
        };
        if image.is_empty() {
            return Err(bad("empty image"));
        }
        let vals = [face.x1, face.y1, face.x2, face.y2];
        if vals.iter().any(|v| !v.is_finite()) {
            return Err(bad("face box is not finite"));
        }
        if face.width() < 8.0 || face.height() < 8.0 {
            return Err(bad("face box smaller than 8 px"));
        }
        let (w, h) = (image.width() as f32, image.height() as f32);
        if face.x2 <= 0.0 || face.y2 <= 0.0 || face.x1 >= w || face.y1 >= h {
            return Err(bad("face box outside the image"));
        }
        if landmarks.iter().flatten().any(|v| !v.is_finite()) {
            return Err(bad("landmarks are not finite"));
        }
        Ok(FacePhoto {
            image,
            face,
            landmarks,
        })
    }

    /// Roll of the face: angle of the line from the left to the right eye, radians.
    pub fn roll(&self) -> f32 {
        let [l, r] = [self.landmarks[0], self.landmarks[1]];
        let (dx, dy) = (r[0] - l[0], r[1] - l[1]);
        if dx.abs() + dy.abs() < 1e-3 {
            0.0
        } else {
            dy.atan2(dx).clamp(-0.6, 0.6)
        }
    }
}

/// Decodes a photo file to RGB (alpha dropped, EXIF orientation applied), the same way the vision
/// crate does, so that landmarks found on the vision decoding apply to these pixels.
pub fn decode_photo(path: &Path) -> Result<Frame, PhotoError> {
    let err = |m: String| PhotoError::Decode {
        path: path.to_path_buf(),
        message: m,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| err(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    let mut decoder = reader.into_decoder().map_err(|e| err(e.to_string()))?;
    use image::ImageDecoder;
    let orientation = decoder.orientation().ok();
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| err(e.to_string()))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Frame::from_rgb(w, h, rgb.into_raw()).map_err(|e| err(e.to_string()))
}

/// Face photos by reference (the resolved [`PhotoRef`]s of the scenario).
#[derive(Debug, Clone, Default)]
pub struct PhotoLibrary {
    photos: BTreeMap<PhotoRef, Arc<FacePhoto>>,
}

impl PhotoLibrary {
    pub fn new() -> PhotoLibrary {
        PhotoLibrary::default()
    }
    /// Adds or replaces the photo for `key`.
    pub fn insert(&mut self, key: PhotoRef, photo: FacePhoto) {
        self.photos.insert(key, Arc::new(photo));
    }
    pub fn get(&self, key: &PhotoRef) -> Option<&Arc<FacePhoto>> {
        self.photos.get(key)
    }
    pub fn contains(&self, key: &PhotoRef) -> bool {
        self.photos.contains_key(key)
    }
    pub fn len(&self) -> usize {
        self.photos.len()
    }
    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }
    /// References in order.
    pub fn keys(&self) -> impl Iterator<Item = &PhotoRef> {
        self.photos.keys()
    }

    /// Decodes every reference that carries a hand annotation (`box` and `landmarks`) and adds
    /// it with that annotation. Returns the references without an annotation (left for the
    /// caller's detector). For callers without a detector, and for tests.
    pub fn load_annotated<'a>(
        &mut self,
        refs: impl IntoIterator<Item = &'a PhotoRef>,
    ) -> Result<Vec<PhotoRef>, PhotoError> {
        let mut rest = Vec::new();
        for r in refs {
            match r.annotation() {
                Some((face, landmarks)) => {
                    let image = decode_photo(&r.path)?;
                    let photo = FacePhoto::new(image, face, landmarks).map_err(|e| match e {
                        PhotoError::InvalidFace { message, .. } => PhotoError::InvalidFace {
                            what: r.to_string(),
                            message,
                        },
                        e => e,
                    })?;
                    self.insert(r.clone(), photo);
                }
                None => rest.push(r.clone()),
            }
        }
        Ok(rest)
    }
}

/// Ellipse of the cut-out, relative to the face box: centre shifted up by `ELLIPSE_UP` box
/// heights, semi-axes `ELLIPSE_AX` box widths and `ELLIPSE_AY` box heights (about 1.6× the box,
/// with hair and chin).
pub(crate) const ELLIPSE_UP: f32 = 0.08;
pub(crate) const ELLIPSE_AX: f32 = 0.8;
pub(crate) const ELLIPSE_AY: f32 = 0.86;
/// Normalised radius where the feathering starts (alpha 1 inside, 0 at radius 1).
pub(crate) const FEATHER_START: f32 = 0.8;

/// One level of the photo pyramid: packed RGB.
pub(crate) struct Level {
    pub w: usize,
    pub h: usize,
    pub rgb: Vec<u8>,
}

/// A photo prepared for rendering: the region around the face, as a mip pyramid so that
/// bilinear sampling never minifies by more than 2.
pub(crate) struct PreparedPhoto {
    /// Photo coordinates of the crop's top-left corner.
    pub origin: [f32; 2],
    pub levels: Vec<Level>,
    pub face: BBox,
    pub landmarks: Landmarks,
    pub roll: f32,
    /// Ellipse in photo coordinates: centre and semi-axes.
    pub ellipse_c: [f32; 2],
    pub ellipse_a: [f32; 2],
}

impl PreparedPhoto {
    pub fn new(p: &FacePhoto) -> PreparedPhoto {
        let f = p.face;
        let (bw, bh) = (f.width(), f.height());
        let (cx, cy) = f.center();
        let ellipse_c = [cx, cy - ELLIPSE_UP * bh];
        let ellipse_a = [ELLIPSE_AX * bw, ELLIPSE_AY * bh];
        // Rotation (roll compensation + sway) can swing the ellipse: crop its circumscribed square.
        let r = ellipse_a[0].max(ellipse_a[1]) + 2.0;
        let (iw, ih) = (p.image.width() as f32, p.image.height() as f32);
        let x0 = (ellipse_c[0] - r).floor().clamp(0.0, iw - 1.0);
        let y0 = (ellipse_c[1] - r).floor().clamp(0.0, ih - 1.0);
        let x1 = (ellipse_c[0] + r).ceil().clamp(x0 + 1.0, iw);
        let y1 = (ellipse_c[1] + r).ceil().clamp(y0 + 1.0, ih);
        let (cw, ch) = ((x1 - x0) as usize, (y1 - y0) as usize);
        let src = p.image.rgb();
        let stride = p.image.width() as usize * 3;
        let mut rgb = Vec::with_capacity(cw * ch * 3);
        for y in 0..ch {
            let row = (y0 as usize + y) * stride + x0 as usize * 3;
            rgb.extend_from_slice(&src[row..row + cw * 3]);
        }
        let mut levels = vec![Level { w: cw, h: ch, rgb }];
        while levels.len() < 8 {
            let last = &levels[levels.len() - 1];
            if last.w < 8 || last.h < 8 {
                break;
            }
            levels.push(downsample(last));
        }
        PreparedPhoto {
            origin: [x0, y0],
            levels,
            face: f,
            landmarks: p.landmarks,
            roll: p.roll(),
            ellipse_c,
            ellipse_a,
        }
    }
}

/// 2×2 box filter.
fn downsample(l: &Level) -> Level {
    let (w, h) = (l.w / 2, l.h / 2);
    let mut rgb = vec![0u8; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let a = |yy: usize, xx: usize| u16::from(l.rgb[(yy * l.w + xx) * 3 + c]);
                let s = a(2 * y, 2 * x)
                    + a(2 * y, 2 * x + 1)
                    + a(2 * y + 1, 2 * x)
                    + a(2 * y + 1, 2 * x + 1);
                rgb[(y * w + x) * 3 + c] = ((s + 2) / 4) as u8;
            }
        }
    }
    Level { w, h, rgb }
}

/// A synthetic face photo (no real person): a skin-tone head with hair, eyes, nose and mouth on a
/// plain background, with its exact box and landmarks. Used by [`crate::bench_render`] and
/// available to tests that must not depend on fixtures. Deterministic for `seed`.
pub fn synthetic_face(seed: u64) -> FacePhoto {
    use rand::Rng;
    let mut rng = crate::seed::rng(seed, &["synthetic-face"]);
    let (w, h) = (320usize, 400usize);
    let bg: [f32; 3] = [
        rng.gen_range(60.0..200.0),
        rng.gen_range(60.0..200.0),
        rng.gen_range(60.0..200.0),
    ];
    let skin: [f32; 3] = {
        let t: f32 = rng.gen_range(0.0..1.0);
        [235.0 - 110.0 * t, 195.0 - 105.0 * t, 165.0 - 100.0 * t]
    };
    let hair: [f32; 3] = {
        let v: f32 = rng.gen_range(20.0..120.0);
        [v, v * 0.8, v * 0.6]
    };
    let (cx, cy) = (160.0f32, 215.0f32);
    let (fw, fh) = (150.0f32, 190.0f32);
    let le = [cx - 33.0, cy - 22.0];
    let re = [cx + 33.0, cy - 22.0];
    let nose = [cx, cy + 12.0];
    let lm = [cx - 27.0, cy + 47.0];
    let rm = [cx + 27.0, cy + 47.0];
    let mut img = vec![0u8; w * h * 3];
    let tex_seed: u64 = rng.gen();
    let shade = |c: [f32; 3], k: f32| [c[0] * k, c[1] * k, c[2] * k];
    for y in 0..h {
        for x in 0..w {
            let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
            let ell = |p: [f32; 2], rx: f32, ry: f32| {
                ((xf - p[0]) / rx).powi(2) + ((yf - p[1]) / ry).powi(2)
            };
            let mut c = bg;
            // Shoulders and neck.
            if ell([cx, 470.0], 150.0, 150.0) < 1.0 {
                c = [hair[2] + 40.0, hair[1] + 60.0, hair[0] + 90.0];
            }
            if (xf - cx).abs() < 34.0 && yf > cy + 60.0 && yf < 345.0 {
                c = shade(skin, 0.8);
            }
            // Hair behind the head.
            if ell([cx, cy - 25.0], fw * 0.6, fh * 0.62) < 1.0 {
                c = hair;
            }
            let fr = ell([cx, cy], fw * 0.5, fh * 0.55);
            if fr < 1.0 && yf > cy - fh * 0.38 {
                // Rounded shading: darker towards the rim and on the right.
                let k = 1.0 - 0.18 * fr - 0.08 * ((xf - cx) / fw + 0.5);
                c = shade(skin, k);
                // Eye sockets.
                for e in [le, re] {
                    let d = ell(e, 24.0, 15.0);
                    if d < 1.0 {
                        c = shade(c, 0.82 + 0.18 * d);
                    }
                }
                // Nose side shadow and nostrils.
                if (xf - (cx + 8.0)).abs() < 3.0 && yf > le[1] + 8.0 && yf < nose[1] {
                    c = shade(c, 0.85);
                }
                if ell([nose[0] - 7.0, nose[1] + 4.0], 4.0, 2.5) < 1.0
                    || ell([nose[0] + 7.0, nose[1] + 4.0], 4.0, 2.5) < 1.0
                {
                    c = shade(skin, 0.45);
                }
                // Lips.
                if ell([cx, lm[1] - 2.0], 27.0, 4.5) < 1.0 {
                    c = [skin[0] * 0.7, skin[1] * 0.42, skin[2] * 0.42];
                }
                if ell([cx, lm[1] + 4.0], 22.0, 5.0) < 1.0 {
                    c = [skin[0] * 0.85, skin[1] * 0.52, skin[2] * 0.52];
                }
                if (yf - lm[1]).abs() < 1.0 && xf > lm[0] && xf < rm[0] {
                    c = shade(skin, 0.35);
                }
            }
            if ell(le, 13.0, 7.0) < 1.0 || ell(re, 13.0, 7.0) < 1.0 {
                c = [235.0, 235.0, 228.0];
            }
            if ell(le, 5.5, 5.5) < 1.0 || ell(re, 5.5, 5.5) < 1.0 {
                c = [35.0, 25.0, 20.0];
            }
            // Eyebrows.
            if (yf - (le[1] - 15.0)).abs() < 3.0
                && ((xf - le[0]).abs() < 15.0 || (xf - re[0]).abs() < 15.0)
            {
                c = hair;
            }
            // A little texture.
            let n =
                crate::seed::gauss_from_hash(crate::seed::mix(tex_seed ^ (y * w + x) as u64)) * 3.0;
            let i = (y * w + x) * 3;
            for k in 0..3 {
                img[i + k] = (c[k] + n).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    let face = BBox {
        x1: cx - fw * 0.5,
        y1: cy - fh * 0.5,
        x2: cx + fw * 0.5,
        y2: cy + fh * 0.5,
    };
    FacePhoto {
        image: Frame::from_rgb(w as u32, h as u32, img).expect("size matches"),
        face,
        landmarks: [le, re, nose, lm, rm],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_boxes() {
        let img = Frame::from_rgb(100, 100, vec![0; 30000]).unwrap();
        let lm = [[0.0; 2]; 5];
        let b = |x1, y1, x2, y2| BBox { x1, y1, x2, y2 };
        assert!(FacePhoto::new(img.clone(), b(10.0, 10.0, 60.0, 70.0), lm).is_ok());
        assert!(FacePhoto::new(img.clone(), b(10.0, 10.0, 12.0, 70.0), lm).is_err());
        assert!(FacePhoto::new(img.clone(), b(200.0, 10.0, 260.0, 70.0), lm).is_err());
        assert!(FacePhoto::new(img, b(f32::NAN, 10.0, 60.0, 70.0), lm).is_err());
    }

    #[test]
    fn pyramid_halves() {
        let p = PreparedPhoto::new(&synthetic_face(1));
        assert!(p.levels.len() >= 3);
        assert_eq!(p.levels[1].w, p.levels[0].w / 2);
    }
}
