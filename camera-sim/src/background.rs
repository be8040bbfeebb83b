//! Procedural lobby backgrounds: a wall gradient, a tiled floor in perspective, a door frame with
//! glass, a light strip, posters and a bench. Generated once per camera (deterministic for the
//! camera seed) and copied into every frame.
//!
//! Only rectangles, gradients and lines are drawn: nothing face-like that a detector could fire
//! on.

use rand::Rng;

use crate::seed;

/// Where the door and the floor are, shared by the background and the planner (people walk
/// out of the door towards the camera).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    /// Row where the back wall meets the floor.
    pub horizon: f32,
    /// Horizontal centre and width of the door opening.
    pub door_cx: f32,
    pub door_w: f32,
    /// Top row of the door opening.
    pub door_top: f32,
}

/// The layout of a camera's lobby.
pub fn layout(camera_seed: u64, width: u32, height: u32) -> Layout {
    let mut rng = seed::rng(camera_seed, &["layout"]);
    let (w, h) = (width as f32, height as f32);
    Layout {
        horizon: h * rng.gen_range(0.58f32..0.64),
        door_cx: w * rng.gen_range(0.38f32..0.62),
        door_w: w * rng.gen_range(0.15f32..0.2),
        door_top: h * rng.gen_range(0.16f32..0.22),
    }
}

type Rgb = [f32; 3];

fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn color(rng: &mut impl Rng, lo: f32, hi: f32) -> Rgb {
    [
        rng.gen_range(lo..hi),
        rng.gen_range(lo..hi),
        rng.gen_range(lo..hi),
    ]
}

/// Renders the background of a camera: `width × height` packed RGB.
pub fn render(camera_seed: u64, width: u32, height: u32) -> Vec<u8> {
    let l = layout(camera_seed, width, height);
    let mut rng = seed::rng(camera_seed, &["background"]);
    let (w, h) = (width as usize, height as usize);
    let (wf, hf) = (width as f32, height as f32);
    let mut img = vec![0f32; w * h * 3];

    // Wall: warm or cool vertical gradient.
    let wall_top = color(&mut rng, 150.0, 215.0);
    let wall_bottom = lerp3(wall_top, color(&mut rng, 90.0, 160.0), 0.6);
    // Floor: tiles in perspective.
    let floor_a = color(&mut rng, 70.0, 140.0);
    let floor_b = lerp3(floor_a, color(&mut rng, 60.0, 170.0), 0.35);
    let vx = wf * 0.5;
    let tile = rng.gen_range(0.7f32..1.3);
    for y in 0..h {
        let yf = y as f32 + 0.5;
        for x in 0..w {
            let xf = x as f32 + 0.5;
            let c = if yf < l.horizon {
                lerp3(wall_top, wall_bottom, yf / l.horizon)
            } else {
                // Depth from the row: rows close to the horizon are far away.
                let dy = (yf - l.horizon).max(0.5);
                let z = hf * 0.25 / dy;
                let wx = (xf - vx) * z / (hf * 0.25);
                let gx = (wx * tile).floor() as i64;
                let gz = (z * 1.5 * tile).floor() as i64;
                // Fade the tiles out towards the horizon (no moiré far away).
                let contrast = ((yf - l.horizon) / (hf * 0.08)).clamp(0.0, 1.0);
                let mid = lerp3(floor_a, floor_b, 0.5);
                let base = if (gx + gz).rem_euclid(2) == 0 {
                    lerp3(mid, floor_a, contrast)
                } else {
                    lerp3(mid, floor_b, contrast)
                };
                // Darker far away, a faint reflection of the light close to the camera.
                let shade = 0.75 + 0.25 * ((yf - l.horizon) / (hf - l.horizon)).clamp(0.0, 1.0);
                [base[0] * shade, base[1] * shade, base[2] * shade]
            };
            let i = (y * w + x) * 3;
            img[i..i + 3].copy_from_slice(&c);
        }
    }
    // Skirting board.
    fill_rect(
        &mut img,
        w,
        h,
        0.0,
        l.horizon - hf * 0.012,
        wf,
        l.horizon,
        lerp3(wall_bottom, [40.0, 40.0, 40.0], 0.6),
    );
    // Ceiling light strip.
    fill_rect(
        &mut img,
        w,
        h,
        wf * 0.2,
        hf * 0.02,
        wf * 0.8,
        hf * 0.045,
        [245.0, 245.0, 235.0],
    );
    // Posters and a notice board (rectangles with a frame and a few "text" lines).
    let posters = rng.gen_range(2..=4);
    for _ in 0..posters {
        let pw = wf * rng.gen_range(0.05f32..0.1);
        let ph = pw * rng.gen_range(1.1f32..1.5);
        // Keep clear of the door.
        let mut px = wf * rng.gen_range(0.03f32..0.9);
        if (px + pw > l.door_cx - l.door_w) && (px < l.door_cx + l.door_w) {
            px = if px < l.door_cx {
                (l.door_cx - l.door_w * 1.2 - pw).max(2.0)
            } else {
                (l.door_cx + l.door_w * 1.2).min(wf - pw - 2.0)
            };
        }
        let py = hf * rng.gen_range(0.12f32..0.3);
        fill_rect(
            &mut img,
            w,
            h,
            px - 3.0,
            py - 3.0,
            px + pw + 3.0,
            py + ph + 3.0,
            [50.0, 45.0, 40.0],
        );
        let c = color(&mut rng, 60.0, 240.0);
        fill_rect(&mut img, w, h, px, py, px + pw, py + ph, c);
        let lines = rng.gen_range(3..7);
        for k in 0..lines {
            let ly = py + ph * (0.15 + 0.12 * k as f32);
            if ly + ph * 0.04 > py + ph {
                break;
            }
            let lw = pw * rng.gen_range(0.4f32..0.85);
            fill_rect(
                &mut img,
                w,
                h,
                px + pw * 0.08,
                ly,
                px + pw * 0.08 + lw,
                ly + ph * 0.04,
                lerp3(c, [20.0, 20.0, 20.0], 0.7),
            );
        }
    }
    // Door: frame, then glass with a vertical gradient and a handle bar.
    let (dx0, dx1) = (l.door_cx - l.door_w * 0.5, l.door_cx + l.door_w * 0.5);
    let frame_c = color(&mut rng, 40.0, 110.0);
    let t = (wf * 0.008).max(2.0);
    fill_rect(
        &mut img,
        w,
        h,
        dx0 - t,
        l.door_top - t,
        dx1 + t,
        l.horizon,
        frame_c,
    );
    let glass_top = [120.0, 145.0, 160.0];
    let glass_bottom = [85.0, 100.0, 105.0];
    for y in (l.door_top.max(0.0) as usize)..(l.horizon.min(hf) as usize) {
        let g = lerp3(
            glass_top,
            glass_bottom,
            (y as f32 - l.door_top) / (l.horizon - l.door_top),
        );
        for x in (dx0.max(0.0) as usize)..(dx1.min(wf) as usize) {
            let i = (y * w + x) * 3;
            img[i..i + 3].copy_from_slice(&g);
        }
    }
    // Mullion between the two door leaves and a handle bar.
    fill_rect(
        &mut img,
        w,
        h,
        l.door_cx - t * 0.5,
        l.door_top,
        l.door_cx + t * 0.5,
        l.horizon,
        frame_c,
    );
    let bar_y = l.door_top + (l.horizon - l.door_top) * 0.55;
    fill_rect(
        &mut img,
        w,
        h,
        dx0 + t,
        bar_y,
        dx1 - t,
        bar_y + t,
        [190.0, 190.0, 195.0],
    );
    // A bench on one side of the floor.
    let left = rng.gen_bool(0.5);
    let bw = wf * rng.gen_range(0.12f32..0.18);
    let bx = if left { wf * 0.04 } else { wf * 0.96 - bw };
    let by = l.horizon + (hf - l.horizon) * 0.15;
    let bench = color(&mut rng, 60.0, 130.0);
    fill_rect(&mut img, w, h, bx, by, bx + bw, by + hf * 0.03, bench);
    fill_rect(
        &mut img,
        w,
        h,
        bx + bw * 0.05,
        by,
        bx + bw * 0.09,
        by + hf * 0.08,
        bench,
    );
    fill_rect(
        &mut img,
        w,
        h,
        bx + bw * 0.91,
        by,
        bx + bw * 0.95,
        by + hf * 0.08,
        bench,
    );
    // A tall plant pot (a column with a darker foliage block).
    let px = if left { wf * 0.9 } else { wf * 0.06 };
    let pw = wf * 0.035;
    fill_rect(
        &mut img,
        w,
        h,
        px,
        l.horizon - hf * 0.06,
        px + pw,
        l.horizon + hf * 0.02,
        [120.0, 80.0, 55.0],
    );
    fill_rect(
        &mut img,
        w,
        h,
        px - pw * 0.6,
        l.horizon - hf * 0.2,
        px + pw * 1.6,
        l.horizon - hf * 0.06,
        [50.0, 105.0, 55.0],
    );

    img.iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn fill_rect(img: &mut [f32], w: usize, h: usize, x0: f32, y0: f32, x1: f32, y1: f32, c: Rgb) {
    let xa = x0.max(0.0).round() as usize;
    let xb = (x1.min(w as f32).round().max(0.0) as usize).min(w);
    let ya = y0.max(0.0).round() as usize;
    let yb = (y1.min(h as f32).round().max(0.0) as usize).min(h);
    for y in ya..yb {
        for x in xa..xb {
            let i = (y * w + x) * 3;
            img[i..i + 3].copy_from_slice(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = render(7, 160, 90);
        assert_eq!(a, render(7, 160, 90));
        assert_ne!(a, render(8, 160, 90));
        assert_eq!(a.len(), 160 * 90 * 3);
    }
}
