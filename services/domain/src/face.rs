//! What the vision stage says about a face, in plain data. Vision produces these; the gallery,
//! tracker and matcher consume them without knowing how they were computed.

use serde::{Deserialize, Serialize};

/// Axis-aligned box in image pixels: `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    /// Intersection over union, 0 when either box is empty.
    pub fn iou(&self, o: &BBox) -> f32 {
        let iw = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let ih = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = iw * ih;
        let union = self.area() + o.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5)
    }
    pub fn to_array(&self) -> [f32; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }
}

/// Five facial landmarks in image pixels, in the order: left eye, right eye, nose,
/// left mouth corner, right mouth corner ("left" as seen in the image).
pub type Landmarks = [[f32; 2]; 5];

/// Why a face failed the quality gate. Stable, machine-readable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityReason {
    LowScore,
    TooSmall,
    Blurred,
    Profile,
    Pitched,
    CutByBorder,
}

impl QualityReason {
    pub fn code(&self) -> &'static str {
        match self {
            QualityReason::LowScore => "low_score",
            QualityReason::TooSmall => "too_small",
            QualityReason::Blurred => "blurred",
            QualityReason::Profile => "profile",
            QualityReason::Pitched => "pitched",
            QualityReason::CutByBorder => "cut_by_border",
        }
    }
}

/// Measured quality of one face and the gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Detector confidence in [0, 1].
    pub score: f32,
    /// Distance between the eye centres in pixels.
    pub inter_ocular: f32,
    /// Variance of the Laplacian of the aligned grey face (higher is sharper).
    pub sharpness: f32,
    /// Rough yaw estimate in degrees from the landmarks (0 = frontal).
    pub yaw: f32,
    /// Rough pitch estimate in degrees from the landmarks (0 = level).
    pub pitch: f32,
    /// The box touches or crosses the image border.
    pub cut_by_border: bool,
    /// A single number in [0, 1] used to rank shots of the same face (best-shot selection).
    pub overall: f32,
    /// Empty when the face passes the gate.
    pub reasons: Vec<QualityReason>,
}

impl Quality {
    pub fn passed(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// An L2-normalised face embedding, tagged with the model that produced it. Vectors from
/// different models are never comparable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    pub model_id: String,
    pub model_version: String,
    pub vector: Vec<f32>,
}

impl Embedding {
    /// Cosine similarity of two normalised embeddings; `None` when they are not comparable
    /// (other model or other size).
    pub fn cosine(&self, other: &Embedding) -> Option<f32> {
        if self.model_id != other.model_id
            || self.model_version != other.model_version
            || self.vector.len() != other.vector.len()
        {
            return None;
        }
        Some(dot(&self.vector, &other.vector))
    }
}

/// Dot product (cosine for unit vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One detected face with everything downstream stages need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceObservation {
    pub bbox: BBox,
    pub landmarks: Landmarks,
    pub quality: Quality,
    /// Present when the face was embedded (faces failing the gate may be skipped).
    pub embedding: Option<Embedding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_basics() {
        let a = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 10.0,
            y2: 10.0,
        };
        let b = BBox {
            x1: 5.0,
            y1: 0.0,
            x2: 15.0,
            y2: 10.0,
        };
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(
            a.iou(&BBox {
                x1: 20.0,
                y1: 20.0,
                x2: 30.0,
                y2: 30.0
            }),
            0.0
        );
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn cosine_refuses_other_models() {
        let a = Embedding {
            model_id: "m".into(),
            model_version: "1".into(),
            vector: vec![1.0, 0.0],
        };
        let mut b = a.clone();
        assert_eq!(a.cosine(&b), Some(1.0));
        b.model_version = "2".into();
        assert_eq!(a.cosine(&b), None);
    }
}
