//! Face alignment: least-squares similarity transform from the 5 detected landmarks onto the
//! embedder's template (Umeyama's method; in 2-D it has a closed form), then a bilinear warp.

use rollcall_domain::face::Landmarks;
use rollcall_domain::Frame;

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
    let m = umeyama(landmarks, template)?;
    let inv = m.inverse()?;
    Some(warp(frame, &inv, out_w, out_h))
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
}
