//! Letterbox resize and normalisation into an NCHW float tensor, in one pass.

use crate::manifest::{ChannelOrder, InputSpec};
use rollcall_domain::Frame;

/// How a frame was placed into the model input: `input = (x0, y0) + frame * scale`, padded
/// bottom/right (`x0 = y0 = 0` unless the frame is one cell of a mosaic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub input_w: u32,
    pub input_h: u32,
    pub x0: f32,
    pub y0: f32,
}

impl Letterbox {
    /// Maps model-input coordinates back to frame coordinates.
    #[inline]
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        ((x - self.x0) / self.scale, (y - self.y0) / self.scale)
    }
}

/// Resizes `frame` (keeping its aspect ratio) into `input_w × input_h`, pads bottom/right with
/// the value that normalises to zero, converts to the model's channel order and normalisation,
/// and writes planar CHW floats into `out` (resized to `3 * input_w * input_h`).
pub fn letterbox_into(
    frame: &Frame,
    spec: &InputSpec,
    input_w: u32,
    input_h: u32,
    out: &mut Vec<f32>,
) -> Letterbox {
    let (fw, fh) = (frame.width() as usize, frame.height() as usize);
    let (iw, ih) = (input_w as usize, input_h as usize);
    let scale = (input_w as f32 / fw as f32).min(input_h as f32 / fh as f32);
    let sw = ((fw as f32 * scale).round() as usize).clamp(1, iw);
    let sh = ((fh as f32 * scale).round() as usize).clamp(1, ih);
    let plane = iw * ih;
    // Every element is written below (image or padding), so the buffer is not cleared first.
    out.resize(3 * plane, 0.0);
    // Model channel c reads RGB channel src_ch[c].
    let src_ch: [usize; 3] = match spec.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let (mean, nscale) = (spec.mean, spec.scale);
    // Pad value: 0 after normalisation (the frame mean), as the reference implementations do.
    for o in out.chunks_mut(plane) {
        for y in 0..sh {
            o[y * iw + sw..(y + 1) * iw].fill(0.0);
        }
        o[sh * iw..].fill(0.0);
    }
    let rgb = frame.rgb();
    let row_stride = fw * 3;
    if sw == fw && sh == fh {
        // The frame already fits (scale 1): no resampling, one conversion per pixel.
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        for y in 0..fh {
            let row = &rgb[y * row_stride..(y + 1) * row_stride];
            let base = y * iw;
            let (d0, d1, d2) = (
                &mut p0[base..base + fw],
                &mut p1[base..base + fw],
                &mut p2[base..base + fw],
            );
            for (x, px) in row.chunks_exact(3).enumerate() {
                d0[x] = (px[src_ch[0]] as f32 - mean[0]) * nscale[0];
                d1[x] = (px[src_ch[1]] as f32 - mean[1]) * nscale[1];
                d2[x] = (px[src_ch[2]] as f32 - mean[2]) * nscale[2];
            }
        }
        return Letterbox {
            scale,
            input_w,
            input_h,
            x0: 0.0,
            y0: 0.0,
        };
    }

    if scale == 0.5 && sw * 2 == fw && sh * 2 == fh {
        // Exactly half size (a 1280×720 camera into 640-wide input): pixel-centre bilinear
        // samples at 2x + 0.5 with weights ½, i.e. the mean of each 2×2 block (the same
        // floats as the general path: sums of small integers are exact).
        let (p0, rest) = out.split_at_mut(plane);
        let (p1, p2) = rest.split_at_mut(plane);
        for y in 0..sh {
            let r0 = &rgb[2 * y * row_stride..(2 * y + 1) * row_stride];
            let r1 = &rgb[(2 * y + 1) * row_stride..(2 * y + 2) * row_stride];
            let base = y * iw;
            let (d0, d1, d2) = (
                &mut p0[base..base + sw],
                &mut p1[base..base + sw],
                &mut p2[base..base + sw],
            );
            for (x, (a, b)) in r0.chunks_exact(6).zip(r1.chunks_exact(6)).enumerate() {
                let mut px = [0f32; 3];
                for (c, v) in px.iter_mut().enumerate() {
                    *v = (a[c] as f32 + a[c + 3] as f32 + b[c] as f32 + b[c + 3] as f32) * 0.25;
                }
                d0[x] = (px[src_ch[0]] - mean[0]) * nscale[0];
                d1[x] = (px[src_ch[1]] - mean[1]) * nscale[1];
                d2[x] = (px[src_ch[2]] - mean[2]) * nscale[2];
            }
        }
        return Letterbox {
            scale,
            input_w,
            input_h,
            x0: 0.0,
            y0: 0.0,
        };
    }
    // Precompute horizontal sample positions (pixel-centre aligned bilinear).
    let inv = 1.0 / scale;
    let xs: Vec<(usize, usize, f32)> = (0..sw)
        .map(|x| {
            let sx = ((x as f32 + 0.5) * inv - 0.5).clamp(0.0, (fw - 1) as f32);
            let x0 = sx.floor() as usize;
            let x1 = (x0 + 1).min(fw - 1);
            (x0 * 3, x1 * 3, sx - x0 as f32)
        })
        .collect();
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    let planes: [&mut [f32]; 3] = [p0, p1, p2];
    let [o0, o1, o2] = planes;
    for y in 0..sh {
        let sy = ((y as f32 + 0.5) * inv - 0.5).clamp(0.0, (fh - 1) as f32);
        let y0 = sy.floor() as usize;
        let y1 = (y0 + 1).min(fh - 1);
        let wy = sy - y0 as f32;
        let r0 = &rgb[y0 * row_stride..(y0 + 1) * row_stride];
        let r1 = &rgb[y1 * row_stride..(y1 + 1) * row_stride];
        let base = y * iw;
        for (x, &(a, b, wx)) in xs.iter().enumerate() {
            let mut px = [0f32; 3];
            for (c, v) in px.iter_mut().enumerate() {
                let top = r0[a + c] as f32 + (r0[b + c] as f32 - r0[a + c] as f32) * wx;
                let bot = r1[a + c] as f32 + (r1[b + c] as f32 - r1[a + c] as f32) * wx;
                *v = top + (bot - top) * wy;
            }
            let i = base + x;
            o0[i] = (px[src_ch[0]] - mean[0]) * nscale[0];
            o1[i] = (px[src_ch[1]] - mean[1]) * nscale[1];
            o2[i] = (px[src_ch[2]] - mean[2]) * nscale[2];
        }
    }
    Letterbox {
        scale,
        input_w,
        input_h,
        x0: 0.0,
        y0: 0.0,
    }
}

/// Normalises an already-sized RGB image (e.g. an aligned 112×112 face) into CHW floats appended
/// to `out`.
pub fn normalise_append(rgb: &[u8], spec: &InputSpec, out: &mut Vec<f32>) {
    let n = rgb.len() / 3;
    let start = out.len();
    out.resize(start + 3 * n, 0.0);
    let dst = &mut out[start..];
    let src_ch: [usize; 3] = match spec.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    for c in 0..3 {
        let (m, s, sc) = (spec.mean[c], spec.scale[c], src_ch[c]);
        let plane = &mut dst[c * n..(c + 1) * n];
        for (i, v) in plane.iter_mut().enumerate() {
            *v = (rgb[i * 3 + sc] as f32 - m) * s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(order: ChannelOrder) -> InputSpec {
        InputSpec {
            name: "x".into(),
            width: 8,
            height: 8,
            dynamic: false,
            multiple_of: 1,
            channel_order: order,
            mean: [0.0; 3],
            scale: [1.0; 3],
        }
    }

    #[test]
    fn letterbox_keeps_aspect_and_pads() {
        // 4x2 frame of pure red into 8x8: scale 2, content 8x4, bottom half padded.
        let f = Frame::from_rgb(4, 2, [255u8, 0, 0].repeat(8)).unwrap();
        let mut out = Vec::new();
        let lb = letterbox_into(&f, &spec(ChannelOrder::Rgb), 8, 8, &mut out);
        assert_eq!(lb.scale, 2.0);
        assert_eq!(out.len(), 3 * 64);
        assert_eq!(out[0], 255.0); // R plane, top-left
        assert_eq!(out[64], 0.0); // G plane
        assert_eq!(out[5 * 8], 0.0); // R plane, row 5 is padding
        assert_eq!(lb.to_frame(8.0, 4.0), (4.0, 2.0));
    }

    #[test]
    fn frame_that_fits_is_copied_exactly_and_a_dirty_buffer_is_fully_rewritten() {
        let rgb: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let f = Frame::from_rgb(5, 3, rgb.clone()).unwrap();
        let mut sp = spec(ChannelOrder::Bgr);
        sp.mean = [1.0, 2.0, 3.0];
        sp.scale = [0.5, 0.25, 2.0];
        // scale 1 (5 wide into 5 wide): the fast path; the buffer holds garbage beforehand
        let mut out = vec![7.0f32; 10];
        let lb = letterbox_into(&f, &sp, 5, 8, &mut out);
        assert_eq!(lb.scale, 1.0);
        assert_eq!(out.len(), 3 * 40);
        for y in 0..8 {
            for x in 0..5 {
                for c in 0..3 {
                    let want = if y < 3 {
                        (rgb[(y * 5 + x) * 3 + (2 - c)] as f32 - sp.mean[c]) * sp.scale[c]
                    } else {
                        0.0
                    };
                    assert_eq!(out[c * 40 + y * 5 + x], want, "({x},{y}) channel {c}");
                }
            }
        }
        // the resampling path: same result into a fresh and into a dirty buffer
        let g = Frame::from_rgb(6, 3, (0..54).map(|i| (i * 11) as u8).collect()).unwrap();
        let mut fresh = Vec::new();
        letterbox_into(&g, &sp, 8, 8, &mut fresh);
        let mut dirty = vec![-3.0f32; 3 * 64];
        letterbox_into(&g, &sp, 8, 8, &mut dirty);
        assert_eq!(fresh, dirty);
        assert!(
            fresh[7 * 8..8 * 8].iter().all(|v| *v == 0.0),
            "bottom rows padded"
        );
    }

    /// The half-size fast path gives the same floats as pixel-centre bilinear resampling.
    #[test]
    fn half_size_fast_path_matches_bilinear() {
        let (fw, fh) = (8usize, 6usize);
        let rgb: Vec<u8> = (0..fw * fh * 3).map(|i| (i * 53 % 256) as u8).collect();
        let f = Frame::from_rgb(fw as u32, fh as u32, rgb.clone()).unwrap();
        let mut sp = spec(ChannelOrder::Rgb);
        sp.mean = [127.5; 3];
        sp.scale = [1.0 / 128.0; 3];
        let mut out = vec![9.0f32; 3];
        let lb = letterbox_into(&f, &sp, 4, 4, &mut out);
        assert_eq!(lb.scale, 0.5);
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..4 {
                    let got = out[c * 16 + y * 4 + x];
                    if y >= 3 {
                        assert_eq!(got, 0.0);
                        continue;
                    }
                    // general formula: sx = 2x + 0.5, sy = 2y + 0.5
                    let at = |yy: usize, xx: usize| rgb[(yy * fw + xx) * 3 + c] as f32;
                    let (x0, y0) = (2 * x, 2 * y);
                    let top = at(y0, x0) + (at(y0, x0 + 1) - at(y0, x0)) * 0.5;
                    let bot = at(y0 + 1, x0) + (at(y0 + 1, x0 + 1) - at(y0 + 1, x0)) * 0.5;
                    let want = (top + (bot - top) * 0.5 - 127.5) / 128.0;
                    assert_eq!(got, want, "({x},{y}) channel {c}");
                }
            }
        }
    }

    #[test]
    fn channel_order_is_applied() {
        let f = Frame::from_rgb(1, 1, vec![10, 20, 30]).unwrap();
        let mut out = Vec::new();
        normalise_append(f.rgb(), &spec(ChannelOrder::Bgr), &mut out);
        assert_eq!(out, vec![30.0, 20.0, 10.0]);
    }
}
