//! A reference to a face in a photo file, as written in a scenario: either a plain path
//! (`"faces/obama/2.jpg"`) or a table that says which face to use and/or annotates it by hand:
//!
//! ```toml
//! photos = [
//!   "../faces/obama/2.jpg",                                   # the largest detected face
//!   { path = "../groups/obama_and_biden.jpg", near = [1700, 1150] },   # the face nearest this point
//!   { path = "assets/synthetic_stranger.png", box = [85, 120, 235, 310],
//!     landmarks = [[127, 193], [193, 193], [160, 227], [133, 262], [187, 262]] },
//! ]
//! ```

use std::cmp::Ordering;
use std::path::PathBuf;

use rollcall_domain::face::{BBox, Landmarks};
use serde::{Deserialize, Serialize};

use crate::error::ScenarioError;

/// Which face of which photo file.
///
/// * `near`: in a photo with several faces, use the detected face whose box centre is nearest
///   this point (default: the largest face). See [`PhotoRef::choose_face`].
/// * `face` (`box` in TOML) and `landmarks`: a hand annotation in image pixels. Callers without a
///   detector use it as is ([`crate::PhotoLibrary::load_annotated`]); a caller with a detector
///   should prefer the detector's face nearest the annotated box and fall back to the annotation
///   when the detector finds none.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoRef {
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near: Option<[f32; 2]>,
    #[serde(rename = "box", skip_serializing_if = "Option::is_none")]
    pub face: Option<[f32; 4]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<Landmarks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    path: PathBuf,
    #[serde(default)]
    near: Option<[f32; 2]>,
    #[serde(default, rename = "box")]
    face: Option<[f32; 4]>,
    #[serde(default)]
    landmarks: Option<Landmarks>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Path(PathBuf),
    Table(Table),
}

impl<'de> Deserialize<'de> for PhotoRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Path(path) => PhotoRef::new(path),
            Repr::Table(t) => PhotoRef {
                path: t.path,
                near: t.near,
                face: t.face,
                landmarks: t.landmarks,
            },
        })
    }
}

impl PhotoRef {
    /// The largest face of `path`.
    pub fn new(path: impl Into<PathBuf>) -> PhotoRef {
        PhotoRef {
            path: path.into(),
            near: None,
            face: None,
            landmarks: None,
        }
    }

    /// A hand-annotated face of `path`.
    pub fn annotated(path: impl Into<PathBuf>, face: BBox, landmarks: Landmarks) -> PhotoRef {
        PhotoRef {
            path: path.into(),
            near: None,
            face: Some(face.to_array()),
            landmarks: Some(landmarks),
        }
    }

    /// The annotated face box.
    pub fn annotated_box(&self) -> Option<BBox> {
        self.face.map(|[x1, y1, x2, y2]| BBox { x1, y1, x2, y2 })
    }

    /// The annotation (box and landmarks), when both are given.
    pub fn annotation(&self) -> Option<(BBox, Landmarks)> {
        Some((self.annotated_box()?, self.landmarks?))
    }

    /// The point that selects the face: `near`, else the centre of the annotated box.
    pub fn hint(&self) -> Option<[f32; 2]> {
        self.near.or_else(|| {
            self.annotated_box().map(|b| {
                let (x, y) = b.center();
                [x, y]
            })
        })
    }

    /// Which of the detected `faces` this reference means: the one whose centre is nearest the
    /// [`PhotoRef::hint`], or the largest when there is no hint. `None` when `faces` is empty.
    pub fn choose_face(&self, faces: &[BBox]) -> Option<usize> {
        match self.hint() {
            Some([x, y]) => faces
                .iter()
                .enumerate()
                .min_by(|(_, a), (_, b)| {
                    let d = |f: &BBox| {
                        let (cx, cy) = f.center();
                        (cx - x).powi(2) + (cy - y).powi(2)
                    };
                    d(a).total_cmp(&d(b))
                })
                .map(|(i, _)| i),
            None => faces
                .iter()
                .enumerate()
                .max_by(|(_, a), (_, b)| a.area().total_cmp(&b.area()))
                .map(|(i, _)| i),
        }
    }

    pub(crate) fn validate(&self, field: &str) -> Result<(), ScenarioError> {
        if !self.path.is_file() {
            return Err(ScenarioError::MissingPhoto {
                field: field.to_string(),
                path: self.path.clone(),
            });
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if let Some(n) = self.near {
            if !finite(&n) {
                return Err(ScenarioError::Invalid {
                    field: format!("{field}.near"),
                    message: "must be finite".into(),
                });
            }
        }
        if let Some(b) = self.face {
            if !finite(&b) || b[2] - b[0] < 8.0 || b[3] - b[1] < 8.0 {
                return Err(ScenarioError::Invalid {
                    field: format!("{field}.box"),
                    message: "must be [x1, y1, x2, y2] with x2 − x1 ≥ 8 and y2 − y1 ≥ 8".into(),
                });
            }
        }
        if let Some(l) = self.landmarks {
            if self.face.is_none() {
                return Err(ScenarioError::Invalid {
                    field: format!("{field}.landmarks"),
                    message: "needs `box` as well".into(),
                });
            }
            if !l.iter().all(|p| finite(p)) {
                return Err(ScenarioError::Invalid {
                    field: format!("{field}.landmarks"),
                    message: "must be finite".into(),
                });
            }
        }
        Ok(())
    }

    fn key(&self) -> (&PathBuf, [u32; 16]) {
        let mut k = [0u32; 16];
        if let Some(n) = self.near {
            k[0] = 1;
            k[1] = n[0].to_bits();
            k[2] = n[1].to_bits();
        }
        if let Some(b) = self.face {
            k[3] = 1;
            for i in 0..4 {
                k[4 + i] = b[i].to_bits();
            }
        }
        if let Some(l) = self.landmarks {
            k[8] = 1;
            // Landmarks rarely differ when the box is equal: fold them into the last slots.
            for (i, p) in l.iter().enumerate() {
                k[9 + i] = p[0].to_bits() ^ p[1].to_bits().rotate_left(16);
            }
        }
        (&self.path, k)
    }
}

impl std::fmt::Display for PhotoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some([x, y]) = self.hint() {
            write!(f, " (face near {x:.0},{y:.0})")?;
        }
        Ok(())
    }
}

impl PartialEq for PhotoRef {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for PhotoRef {}
impl PartialOrd for PhotoRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PhotoRef {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}
impl std::hash::Hash for PhotoRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_nearest_or_largest() {
        let b = |x1, y1, x2, y2| BBox { x1, y1, x2, y2 };
        let faces = [b(0.0, 0.0, 10.0, 10.0), b(100.0, 100.0, 150.0, 150.0)];
        assert_eq!(PhotoRef::new("a").choose_face(&faces), Some(1));
        let mut r = PhotoRef::new("a");
        r.near = Some([4.0, 6.0]);
        assert_eq!(r.choose_face(&faces), Some(0));
        assert_eq!(r.choose_face(&[]), None);
    }

    #[test]
    fn parses_both_forms() {
        #[derive(Deserialize)]
        struct T {
            p: Vec<PhotoRef>,
        }
        let t: T = toml::from_str(
            r#"p = ["a.jpg", { path = "b.jpg", near = [1, 2] }, { path = "c.jpg", box = [0, 0, 10, 10], landmarks = [[1,1],[2,2],[3,3],[4,4],[5,5]] }]"#,
        )
        .unwrap();
        assert_eq!(t.p[0], PhotoRef::new("a.jpg"));
        assert_eq!(t.p[1].near, Some([1.0, 2.0]));
        assert!(t.p[2].annotation().is_some());
        assert!(toml::from_str::<T>(r#"p = [{ path = "b.jpg", nearby = [1, 2] }]"#).is_err());
    }
}
