//! Face alignment: least-squares similarity transform from the 5 detected landmarks onto the
//! embedder's template (Umeyama's method; in 2-D it has a closed form), then a warp straight
//! from the full-resolution frame, sampled bilinearly or with a wider kernel ([`Resample`]).

use rollcall_domain::face::Landmarks;
use rollcall_domain::Frame;
use serde::{Deserialize, Serialize};

/// How the aligned crop samples the frame.
///
/// A small face (20–60 px tall) is enlarged 2–5× onto the 112×112 template, where bilinear
/// interpolation gives a soft, blocky crop; a cubic or Lanczos kernel keeps more of the edges
/// the frame has. When the face is larger than the template (the crop is a reduction) the
/// kernels widen by the reduction factor, so they also filter out what bilinear would alias.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resample {
    /// 2×2 taps, no prefilter (the original warp).
    #[default]
    Bilinear,
    /// Catmull-Rom cubic (Keys, a = −0.5): 4×4 taps when enlarging.
    Bicubic,
    /// Lanczos, 3 lobes: 6×6 taps when enlarging.
    Lanczos3,
}

impl Resample {
    pub const ALL: [Resample; 3] = [Resample::Bilinear, Resample::Bicubic, Resample::Lanczos3];

    pub fn as_str(&self) -> &'static str {
        match self {
            Resample::Bilinear => "bilinear",
            Resample::Bicubic => "bicubic",
            Resample::Lanczos3 => "lanczos3",
        }
    }

    /// Half-width of the kernel in source pixels at unit scale.
    fn radius(&self) -> f32 {
        match self {
            Resample::Bilinear => 1.0,
            Resample::Bicubic => 2.0,
            Resample::Lanczos3 => 3.0,
        }
    }

    /// The kernel's weight at distance `x` (unit scale).
    fn weight(&self, x: f32) -> f32 {
        let x = x.abs();
        match self {
            Resample::Bilinear => (1.0 - x).max(0.0),
            Resample::Bicubic => {
                const A: f32 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
                } else {
                    0.0
                }
            }
            Resample::Lanczos3 => {
                if x < 1e-6 {
                    1.0
                } else if x < 3.0 {
                    let px = std::f32::consts::PI * x;
                    3.0 * px.sin() * (px / 3.0).sin() / (px * px)
                } else {
                    0.0
                }
            }
        }
    }
}

impl std::str::FromStr for Resample {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Resample::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?}: expected bilinear, bicubic or lanczos3"))
    }
}

impl std::fmt::Display for Resample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `dst = [a -b; b a] * src + [tx; ty]`: rotation, uniform scale and translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The inverse transform; `None` for a degenerate (zero-scale) one.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d <= f32::EPSILON {
            return None;
        }
        let (ia, ib) = (self.a / d, -self.b / d);
        Some(Similarity {
            a: ia,
            b: ib,
            tx: -(ia * self.tx - ib * self.ty),
            ty: -(ib * self.tx + ia * self.ty),
        })
    }

    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// Least-squares similarity mapping `src` points onto `dst` points (Umeyama 1991, without
/// reflection). Returns `None` when the source points are degenerate (all equal).
pub fn umeyama(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Option<Similarity> {
    let n = src.len().min(dst.len());
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let (mut msx, mut msy, mut mdx, mut mdy) = (0f64, 0f64, 0f64, 0f64);
    for i in 0..n {
        msx += src[i][0] as f64;
        msy += src[i][1] as f64;
        mdx += dst[i][0] as f64;
        mdy += dst[i][1] as f64;
    }
    msx /= nf;
    msy /= nf;
    mdx /= nf;
    mdy /= nf;
    let (mut sxx, mut num_a, mut num_b) = (0f64, 0f64, 0f64);
    for i in 0..n {
        let (sx, sy) = (src[i][0] as f64 - msx, src[i][1] as f64 - msy);
        let (dx, dy) = (dst[i][0] as f64 - mdx, dst[i][1] as f64 - mdy);
        sxx += sx * sx + sy * sy;
        num_a += sx * dx + sy * dy;
        num_b += sx * dy - sy * dx;
    }
    if sxx <= 1e-12 {
        return None;
    }
    let a = num_a / sxx;
    let b = num_b / sxx;
    let tx = mdx - (a * msx - b * msy);
    let ty = mdy - (b * msx + a * msy);
    Some(Similarity {
        a: a as f32,
        b: b as f32,
        tx: tx as f32,
        ty: ty as f32,
    })
}

/// Warps `frame` so that `landmarks` land on `template`, producing an `out_w × out_h` RGB crop.
/// Pixels sampled outside the frame are black. Returns `None` for degenerate landmarks.
pub fn align(
    frame: &Frame,
    landmarks: &Landmarks,
    template: &[[f32; 2]; 5],
    out_w: u32,
    out_h: u32,
) -> Option<Frame> {
    align_with(frame, landmarks, template, out_w, out_h, Resample::Bilinear)
}

/// [`align`] sampling the frame with `resample`.
pub fn align_with(
    frame: &Frame,
    landmarks: &Landmarks,
    template: &[[f32; 2]; 5],
    out_w: u32,
    out_h: u32,
    resample: Resample,
) -> Option<Frame> {
    let m = umeyama(landmarks, template)?;
    let inv = m.inverse()?;
    Some(warp_with(frame, &inv, out_w, out_h, resample))
}

/// [`warp`] with the kernel `resample`. For a reduction (the inverse transform's scale `s` is
/// above one) the kernel is stretched by `s`, so every output pixel averages the frame pixels
/// it covers. Frame pixels outside the frame count as black, as in [`warp`].
pub fn warp_with(
    frame: &Frame,
    inv: &Similarity,
    out_w: u32,
    out_h: u32,
    resample: Resample,
) -> Frame {
    if resample == Resample::Bilinear {
        return warp(frame, inv, out_w, out_h);
    }
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let src = frame.rgb();
    let stretch = inv.scale().max(1.0);
    if !stretch.is_finite() {
        return Frame::from_rgb(out_w, out_h, vec![0; out_w as usize * out_h as usize * 3])
            .expect("buffer sized for out_w x out_h");
    }
    let radius = resample.radius() * stretch;
    // taps per axis, bounded so that a degenerate transform cannot ask for millions
    let max_taps = (2.0 * radius).ceil().min(256.0) as usize + 1;
    let mut wx = vec![0f32; max_taps];
    let mut wy = vec![0f32; max_taps];
    let mut out = vec![0u8; out_w as usize * out_h as usize * 3];
    for v in 0..out_h {
        for u in 0..out_w {
            let [sx, sy] = inv.apply([u as f32, v as f32]);
            if !(sx > -1.0 && sy > -1.0 && sx < fw as f32 && sy < fh as f32) {
                continue;
            }
            let x0 = (sx - radius).ceil() as i64;
            let y0 = (sy - radius).ceil() as i64;
            let nx = ((sx + radius).floor() as i64 - x0 + 1).clamp(0, max_taps as i64) as usize;
            let ny = ((sy + radius).floor() as i64 - y0 + 1).clamp(0, max_taps as i64) as usize;
            let (mut sum_x, mut sum_y) = (0f32, 0f32);
            for (i, w) in wx.iter_mut().enumerate().take(nx) {
                *w = resample.weight(((x0 + i as i64) as f32 - sx) / stretch);
                sum_x += *w;
            }
            for (j, w) in wy.iter_mut().enumerate().take(ny) {
                *w = resample.weight(((y0 + j as i64) as f32 - sy) / stretch);
                sum_y += *w;
            }
            let norm = sum_x * sum_y;
            if norm.abs() <= f32::EPSILON {
                continue;
            }
            let mut acc = [0f32; 3];
            for (j, &wyj) in wy.iter().enumerate().take(ny) {
                let y = y0 + j as i64;
                if y < 0 || y >= fh || wyj == 0.0 {
                    continue;
                }
                let row = (y * fw) as usize * 3;
                let mut racc = [0f32; 3];
                for (i, &wxi) in wx.iter().enumerate().take(nx) {
                    let x = x0 + i as i64;
                    if x < 0 || x >= fw {
                        continue;
                    }
                    let p = row + x as usize * 3;
                    racc[0] += wxi * src[p] as f32;
                    racc[1] += wxi * src[p + 1] as f32;
                    racc[2] += wxi * src[p + 2] as f32;
                }
                for c in 0..3 {
                    acc[c] += wyj * racc[c];
                }
            }
            let o = ((v * out_w + u) * 3) as usize;
            for c in 0..3 {
                out[o + c] = (acc[c] / norm).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Frame::from_rgb(out_w, out_h, out).expect("buffer sized for out_w x out_h")
}

/// For each output pixel (u, v), samples the frame at `inv(u, v)` bilinearly.
pub fn warp(frame: &Frame, inv: &Similarity, out_w: u32, out_h: u32) -> Frame {
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let src = frame.rgb();
    let mut out = vec![0u8; out_w as usize * out_h as usize * 3];
    let px = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= fw || y >= fh {
            0.0
        } else {
            src[((y * fw + x) * 3) as usize + c] as f32
        }
    };
    for v in 0..out_h {
        for u in 0..out_w {
            let [sx, sy] = inv.apply([u as f32, v as f32]);
            let o = ((v * out_w + u) * 3) as usize;
            if sx <= -1.0 || sy <= -1.0 || sx >= fw as f32 || sy >= fh as f32 {
                continue;
            }
            let x0 = sx.floor() as i64;
            let y0 = sy.floor() as i64;
            let (wx, wy) = (sx - x0 as f32, sy - y0 as f32);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - wx) + px(x0 + 1, y0, c) * wx;
                let bot = px(x0, y0 + 1, c) * (1.0 - wx) + px(x0 + 1, y0 + 1, c) * wx;
                out[o + c] = (top * (1.0 - wy) + bot * wy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Frame::from_rgb(out_w, out_h, out).expect("buffer sized for out_w x out_h")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity() {
        let t = Similarity {
            a: 0.8,
            b: 0.3,
            tx: 12.0,
            ty: -4.0,
        };
        let src = [
            [10.0, 20.0],
            [40.0, 22.0],
            [25.0, 35.0],
            [14.0, 50.0],
            [38.0, 51.0],
        ];
        let dst: Vec<[f32; 2]> = src.iter().map(|p| t.apply(*p)).collect();
        let m = umeyama(&src, &dst).unwrap();
        for (a, b) in [(m.a, t.a), (m.b, t.b), (m.tx, t.tx), (m.ty, t.ty)] {
            assert!((a - b).abs() < 1e-3, "{m:?} vs {t:?}");
        }
        let inv = m.inverse().unwrap();
        let p = inv.apply(m.apply([3.0, 7.0]));
        assert!((p[0] - 3.0).abs() < 1e-3 && (p[1] - 7.0).abs() < 1e-3);
    }

    #[test]
    fn degenerate_points() {
        assert!(umeyama(
            &[[1.0, 1.0]; 5],
            &[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]]
        )
        .is_none());
    }

    #[test]
    fn identity_warp_copies() {
        let f = Frame::from_rgb(2, 2, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).unwrap();
        let out = warp(
            &f,
            &Similarity {
                a: 1.0,
                b: 0.0,
                tx: 0.0,
                ty: 0.0,
            },
            2,
            2,
        );
        assert_eq!(out.rgb(), f.rgb());
    }

    fn textured(w: u32, h: u32, seed: u32) -> Frame {
        let mut x = seed.wrapping_mul(2654435761).max(1);
        let rgb = (0..w * h * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 256) as u8
            })
            .collect();
        Frame::from_rgb(w, h, rgb).unwrap()
    }

    #[test]
    fn kernels_copy_at_identity() {
        let f = textured(9, 7, 3);
        let id = Similarity {
            a: 1.0,
            b: 0.0,
            tx: 0.0,
            ty: 0.0,
        };
        for r in Resample::ALL {
            assert_eq!(warp_with(&f, &id, 9, 7, r).rgb(), f.rgb(), "{r}");
        }
    }

    #[test]
    fn kernels_keep_a_flat_image_flat_under_rotation_and_scale() {
        let f = Frame::from_rgb(64, 64, vec![77; 64 * 64 * 3]).unwrap();
        for (a, b) in [(0.3f32, 0.1f32), (1.7, -0.9), (0.05, 0.0)] {
            let inv = Similarity {
                a,
                b,
                tx: 20.0,
                ty: 20.0,
            };
            for r in Resample::ALL {
                let out = warp_with(&f, &inv, 8, 8, r);
                // pixels whose kernel stays inside the frame are exactly the flat value
                let [sx, sy] = inv.apply([4.0, 4.0]);
                assert!(sx > 8.0 && sy > 8.0 && sx < 56.0 && sy < 56.0);
                let p = (4 * 8 + 4) * 3;
                assert_eq!(&out.rgb()[p..p + 3], &[77, 77, 77], "{r} a={a} b={b}");
            }
        }
    }

    #[test]
    fn wide_kernels_average_a_reduction_where_bilinear_aliases() {
        // one-pixel black/white columns reduced 2x: bilinear picks every other column (all
        // black or all white), the stretched kernels average them to mid-grey
        let (w, h) = (64u32, 16u32);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for (i, p) in rgb.chunks_exact_mut(3).enumerate() {
            if (i as u32 % w) % 2 == 1 {
                p.copy_from_slice(&[255, 255, 255]);
            }
        }
        let f = Frame::from_rgb(w, h, rgb).unwrap();
        let half = Similarity {
            a: 2.0,
            b: 0.0,
            tx: 0.0,
            ty: 0.0,
        };
        let mid = |r: Resample| {
            let out = warp_with(&f, &half, 16, 8, r);
            let row = 4 * 16 * 3;
            (4..12)
                .map(|x| out.rgb()[row + x * 3] as i32)
                .collect::<Vec<_>>()
        };
        assert!(mid(Resample::Bilinear).iter().all(|&v| v == 0 || v == 255));
        for r in [Resample::Bicubic, Resample::Lanczos3] {
            assert!(
                mid(r).iter().all(|&v| (v - 128).abs() <= 16),
                "{r}: {:?}",
                mid(r)
            );
        }
    }

    #[test]
    fn enlarging_with_a_wider_kernel_keeps_more_detail() {
        let f = textured(24, 24, 11);
        let quarter = Similarity {
            a: 0.25,
            b: 0.05,
            tx: 1.0,
            ty: 1.0,
        };
        let sharp =
            |r: Resample| crate::quality::laplacian_variance(&warp_with(&f, &quarter, 80, 80, r));
        let (bl, bc, lz) = (
            sharp(Resample::Bilinear),
            sharp(Resample::Bicubic),
            sharp(Resample::Lanczos3),
        );
        assert!(
            bc > bl * 1.1 && lz > bl * 1.2,
            "bilinear {bl}, bicubic {bc}, lanczos {lz}"
        );
    }

    #[test]
    fn degenerate_transforms_do_not_panic() {
        let f = textured(16, 16, 5);
        for inv in [
            Similarity {
                a: 1e9,
                b: 0.0,
                tx: 0.0,
                ty: 0.0,
            },
            Similarity {
                a: f32::NAN,
                b: 0.0,
                tx: 0.0,
                ty: 0.0,
            },
            Similarity {
                a: 0.0,
                b: 0.0,
                tx: 3.0,
                ty: 3.0,
            },
        ] {
            for r in Resample::ALL {
                let out = warp_with(&f, &inv, 4, 4, r);
                assert_eq!(out.width(), 4);
            }
        }
    }

    #[test]
    fn resample_names_round_trip() {
        for r in Resample::ALL {
            assert_eq!(r.as_str().parse::<Resample>().unwrap(), r);
        }
        assert!("nearest".parse::<Resample>().is_err());
    }
}
