//! The quality gate: detection score, inter-ocular distance, sharpness (variance of the
//! Laplacian of the aligned face), rough yaw/pitch from the landmarks, face cut by the border.
//! Every rejection carries a machine-readable [`QualityReason`].

use rollcall_domain::face::{BBox, Landmarks, Quality, QualityReason};
use rollcall_domain::Frame;
use serde::{Deserialize, Serialize};

/// Gate thresholds. Enrollment uses a stricter gate than live recognition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QualityConfig {
    pub min_score: f32,
    pub min_inter_ocular: f32,
    pub min_sharpness: f32,
    pub max_yaw: f32,
    pub max_pitch: f32,
    /// Pixels of tolerance before a box counts as cut by the border.
    pub border_margin: f32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            min_score: 0.7,
            min_inter_ocular: 9.0,
            min_sharpness: 8.0,
            max_yaw: 45.0,
            max_pitch: 40.0,
            border_margin: 2.0,
        }
    }
}

impl QualityConfig {
    /// The stricter gate used for enrollment photos.
    pub fn enrollment() -> Self {
        Self {
            min_score: 0.8,
            min_inter_ocular: 30.0,
            min_sharpness: 25.0,
            max_yaw: 30.0,
            max_pitch: 30.0,
            border_margin: 2.0,
        }
    }
}

/// Rough head pose from the 5 landmarks, in degrees: (yaw, pitch). Roll is removed first by
/// rotating so that the eyes are level. Yaw from the nose's horizontal offset from the eye
/// midpoint (relative to half the eye distance); pitch from the nose's position between the
/// eye line and the mouth line, against the frontal ratio of the alignment template.
pub fn head_pose(l: &Landmarks) -> (f32, f32) {
    let (le, re, nose) = (l[0], l[1], l[2]);
    let mouth = [(l[3][0] + l[4][0]) * 0.5, (l[3][1] + l[4][1]) * 0.5];
    let eye_mid = [(le[0] + re[0]) * 0.5, (le[1] + re[1]) * 0.5];
    let (dx, dy) = (re[0] - le[0], re[1] - le[1]);
    let iod = (dx * dx + dy * dy).sqrt().max(1e-3);
    let (c, s) = (dx / iod, dy / iod);
    // rotate into the eye frame
    let rot = |p: [f32; 2]| {
        let (x, y) = (p[0] - eye_mid[0], p[1] - eye_mid[1]);
        [c * x + s * y, -s * x + c * y]
    };
    let n = rot(nose);
    let m = rot(mouth);
    let yaw = (n[0] / (iod * 0.5)).clamp(-1.0, 1.0).asin().to_degrees();
    const FRONTAL: f32 = 0.494; // (nose - eyes) / (mouth - eyes) on the ArcFace template
    let ratio = if m[1].abs() > 1e-3 {
        n[1] / m[1]
    } else {
        FRONTAL
    };
    let pitch = ((ratio - FRONTAL) / 0.5)
        .clamp(-1.0, 1.0)
        .asin()
        .to_degrees();
    (yaw, pitch)
}

/// Variance of the 4-neighbour Laplacian over the grey image (higher = sharper).
pub fn laplacian_variance(frame: &Frame) -> f32 {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f32> = frame
        .rgb()
        .chunks_exact(3)
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let (mut sum, mut sum2, mut n) = (0f64, 0f64, 0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let v = (grey[i - 1] + grey[i + 1] + grey[i - w] + grey[i + w] - 4.0 * grey[i]) as f64;
            sum += v;
            sum2 += v * v;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean) as f32
}

/// Scores one face. `aligned` is the face warped to the embedder's template (its sharpness is
/// comparable across face sizes).
pub fn assess(
    cfg: &QualityConfig,
    frame_w: u32,
    frame_h: u32,
    bbox: &BBox,
    score: f32,
    l: &Landmarks,
    aligned: Option<&Frame>,
) -> Quality {
    let (dx, dy) = (l[1][0] - l[0][0], l[1][1] - l[0][1]);
    let inter_ocular = (dx * dx + dy * dy).sqrt();
    let sharpness = aligned.map(laplacian_variance).unwrap_or(0.0);
    let (yaw, pitch) = head_pose(l);
    let m = cfg.border_margin;
    let (fw, fh) = (frame_w as f32, frame_h as f32);
    let cut_by_border = bbox.x1 < -m
        || bbox.y1 < -m
        || bbox.x2 > fw + m
        || bbox.y2 > fh + m
        || l.iter()
            .any(|p| p[0] < 0.0 || p[1] < 0.0 || p[0] >= fw || p[1] >= fh);
    let mut reasons = Vec::new();
    if score < cfg.min_score {
        reasons.push(QualityReason::LowScore);
    }
    if inter_ocular < cfg.min_inter_ocular {
        reasons.push(QualityReason::TooSmall);
    }
    if sharpness < cfg.min_sharpness {
        reasons.push(QualityReason::Blurred);
    }
    if yaw.abs() > cfg.max_yaw {
        reasons.push(QualityReason::Profile);
    }
    if pitch.abs() > cfg.max_pitch {
        reasons.push(QualityReason::Pitched);
    }
    if cut_by_border {
        reasons.push(QualityReason::CutByBorder);
    }
    let size_term = (inter_ocular / 60.0).clamp(0.0, 1.0);
    let sharp_term = (sharpness / (4.0 * cfg.min_sharpness.max(1.0))).clamp(0.0, 1.0);
    let pose_term = yaw.to_radians().cos().max(0.0) * pitch.to_radians().cos().max(0.0);
    let border_term = if cut_by_border { 0.5 } else { 1.0 };
    let overall = (score.clamp(0.0, 1.0)
        * (0.3 + 0.7 * size_term)
        * (0.3 + 0.7 * sharp_term)
        * pose_term
        * border_term)
        .clamp(0.0, 1.0);
    Quality {
        score,
        inter_ocular,
        sharpness,
        yaw,
        pitch,
        cut_by_border,
        overall,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: Landmarks = [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ];

    #[test]
    fn template_is_frontal() {
        let (yaw, pitch) = head_pose(&TEMPLATE);
        assert!(yaw.abs() < 3.0 && pitch.abs() < 3.0, "{yaw} {pitch}");
    }

    #[test]
    fn nose_over_one_eye_is_profile() {
        let mut l = TEMPLATE;
        l[2][0] = l[1][0];
        let (yaw, _) = head_pose(&l);
        assert!(yaw > 60.0, "{yaw}");
        let q = assess(
            &QualityConfig::default(),
            200,
            200,
            &BBox {
                x1: 20.0,
                y1: 20.0,
                x2: 100.0,
                y2: 120.0,
            },
            0.99,
            &l,
            None,
        );
        assert!(q.reasons.contains(&QualityReason::Profile));
        assert!(q.reasons.contains(&QualityReason::Blurred)); // no aligned crop given: sharpness 0
    }

    #[test]
    fn border_and_size() {
        let l = TEMPLATE.map(|p| [p[0] * 0.2, p[1] * 0.2]);
        let q = assess(
            &QualityConfig::default(),
            100,
            100,
            &BBox {
                x1: -10.0,
                y1: 0.0,
                x2: 30.0,
                y2: 30.0,
            },
            0.9,
            &l,
            None,
        );
        assert!(q.reasons.contains(&QualityReason::CutByBorder));
        assert!(q.reasons.contains(&QualityReason::TooSmall));
    }

    #[test]
    fn flat_image_has_no_sharpness() {
        let flat = Frame::from_rgb(16, 16, vec![128; 16 * 16 * 3]).unwrap();
        assert_eq!(laplacian_variance(&flat), 0.0);
        let mut checker = vec![0u8; 16 * 16 * 3];
        for (i, p) in checker.chunks_exact_mut(3).enumerate() {
            let v = if (i % 16 + i / 16) % 2 == 0 { 255 } else { 0 };
            p.copy_from_slice(&[v, v, v]);
        }
        assert!(laplacian_variance(&Frame::from_rgb(16, 16, checker).unwrap()) > 1000.0);
    }
}
