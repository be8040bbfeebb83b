//! `rollcall bench sizes DIR`: how well the embedder still separates people as faces shrink
//! (issue 22: a quality gate's size floor should match what the embedder can separate).
//!
//! DIR holds one folder per person with their photos (the fixtures' `faces/` layout, or
//! LFW's). Every photo is embedded as it is (the enrollment side). Then, for each `--eyes D`,
//! every photo whose face has its eyes more than D pixels apart is reduced (triangle filter) so
//! that they are D pixels apart, placed at the centre of a mid-grey frame of `--frame` size (as
//! a lobby camera would see that face, so the detector runs at its own scale; `--blur L` smears
//! it sideways over L pixels first, as motion during the exposure would), and its face is
//! found again, gated and embedded there: the probe. Each probe is compared with every other
//! photo's full-size embedding (same person: genuine, other person: impostor). Per size the
//! summary gives how many probes were found and passed the gate, the genuine and impostor
//! similarity quantiles, TAR at FAR 10 % / 1 % and rank-1 identification (of the probes whose
//! person has another photo: is the most similar other photo one of that person's), for every
//! probe found and for those the gate passed. Each photo is decoded once and dropped once its
//! sizes are cut; as every photo is compared with every other, more than [`MAX_PHOTOS`] are
//! refused.

use crate::cmd_bench_sightings::{iod, quantiles, reduce};
use crate::cmd_vision::{load, tar_at_far, VisionOpts};
use anyhow::{bail, Context};
use rollcall_domain::face::dot;
use rollcall_domain::Frame;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// Options of `bench sizes`.
#[derive(Debug, Clone)]
pub struct SizesOpts {
    pub dir: PathBuf,
    /// Eye distances in pixels to reduce every photo's face to.
    pub eyes: Vec<f32>,
    /// The frame (width, height) each reduced photo is placed in.
    pub frame: (u32, u32),
    /// Horizontal motion blur applied to each reduced photo, in its pixels (0: none).
    pub blur: u32,
}

/// `f` smeared horizontally over `len` pixels (the mean of `len` neighbours along the row,
/// centred, edges clamped), as a sideways motion during the exposure would.
fn motion_blur(f: &Frame, len: u32) -> anyhow::Result<Frame> {
    if len <= 1 {
        return Ok(f.clone());
    }
    let (w, h) = (f.width() as i64, f.height() as i64);
    let src = f.rgb();
    let mut out = vec![0u8; src.len()];
    let half = (len as i64 - 1) / 2;
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            for k in 0..len as i64 {
                let sx = (x - half + k).clamp(0, w - 1);
                let s = ((y * w + sx) * 3) as usize;
                for c in 0..3 {
                    acc[c] += src[s + c] as u32;
                }
            }
            let d = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                out[d + c] = ((acc[c] + len / 2) / len) as u8;
            }
        }
    }
    Ok(Frame::from_rgb(f.width(), f.height(), out)?)
}

/// Compares every photo with every other: more than this many is refused, not run for hours.
pub const MAX_PHOTOS: usize = 3000;

/// One photo: its person and its face's embedding at full size.
struct Photo {
    person: String,
    embedding: Vec<f32>,
}

/// One photo's face found again at one reduced size.
struct Probe {
    photo: usize,
    embedding: Vec<f32>,
    passed: bool,
}

/// Per eye distance: the photos whose face was larger, and the probes found in them.
#[derive(Default)]
struct AtSize {
    larger: usize,
    probes: Vec<Probe>,
}

/// `small` placed on a mid-grey `w`×`h` frame so that `centre` (in `small`'s pixels) falls at
/// the frame's centre; what falls outside is cut off.
fn place(small: &Frame, centre: [f32; 2], w: u32, h: u32) -> anyhow::Result<Frame> {
    let mut rgb = vec![128u8; w as usize * h as usize * 3];
    let ox = (w as f32 / 2.0 - centre[0]).round() as i64;
    let oy = (h as f32 / 2.0 - centre[1]).round() as i64;
    let (sw, sh) = (small.width() as i64, small.height() as i64);
    let src = small.rgb();
    for y in 0..h as i64 {
        let sy = y - oy;
        if !(0..sh).contains(&sy) {
            continue;
        }
        let x0 = ox.max(0);
        let x1 = (ox + sw).min(w as i64);
        if x0 >= x1 {
            continue;
        }
        let (sx0, n) = ((x0 - ox) as usize, (x1 - x0) as usize);
        let s = (sy as usize * sw as usize + sx0) * 3;
        let d = (y as usize * w as usize + x0 as usize) * 3;
        rgb[d..d + n * 3].copy_from_slice(&src[s..s + n * 3]);
    }
    Ok(Frame::from_rgb(w, h, rgb)?)
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some("jpg" | "jpeg" | "png" | "webp")
    )
}

/// Genuine and impostor scores and rank-1 hits of a set of probes.
#[derive(Default)]
struct Scores {
    probes: usize,
    genuine: Vec<f32>,
    impostor: Vec<f32>,
    /// Probes with another photo of their person to be found by, and those whose most
    /// similar other photo is one of them.
    rank1_probes: usize,
    rank1: usize,
}

impl Scores {
    fn add(&mut self, photos: &[Photo], probe: usize, e: &[f32]) {
        self.probes += 1;
        let mut best: Option<(f32, bool)> = None;
        let mut has_mate = false;
        for (k, x) in photos.iter().enumerate() {
            if k == probe {
                continue;
            }
            let s = dot(&x.embedding, e);
            let same = x.person == photos[probe].person;
            if same {
                has_mate = true;
                self.genuine.push(s);
            } else {
                self.impostor.push(s);
            }
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, same));
            }
        }
        if has_mate {
            self.rank1_probes += 1;
            if let Some((_, true)) = best {
                self.rank1 += 1;
            }
        }
    }

    fn json(mut self) -> Value {
        let tar = |far: f64| tar_at_far(&self.genuine, &self.impostor, far);
        let (t10, t01) = (tar(0.1), tar(0.01));
        json!({
            "probes": self.probes,
            "genuine": quantiles(&mut self.genuine),
            "impostor": quantiles(&mut self.impostor),
            "tar_at_far": {"0.1": t10, "0.01": t01},
            "rank1_probes": self.rank1_probes,
            "rank1": if self.rank1_probes > 0 {
                self.rank1 as f64 / self.rank1_probes as f64
            } else {
                0.0
            },
        })
    }
}

pub fn run(v: &VisionOpts, o: &SizesOpts) -> anyhow::Result<Value> {
    if !o.dir.is_dir() {
        bail!("{} is not a directory", o.dir.display());
    }
    let (fw, fh) = o.frame;
    if fw < 32 || fh < 32 || fw > 8192 || fh > 8192 {
        bail!("--frame {fw}x{fh}: each side must be 32 to 8192 pixels");
    }
    if let Some(d) = o.eyes.iter().find(|d| !(d.is_finite() && **d >= 2.0)) {
        bail!("--eyes {d}: eye distances must be at least 2 pixels");
    }
    if o.blur > 64 {
        bail!("--blur {}: at most 64 pixels", o.blur);
    }
    let mut people: Vec<PathBuf> = std::fs::read_dir(&o.dir)
        .with_context(|| format!("{}", o.dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    let mut listed: Vec<(String, PathBuf)> = Vec::new();
    for dir in &people {
        let person = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("{}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        files.sort();
        listed.extend(files.into_iter().map(|f| (person.clone(), f)));
    }
    if listed.len() > MAX_PHOTOS {
        bail!(
            "{}: {} photos; every photo is compared with every other, so at most {MAX_PHOTOS}: \
             point it at a subset",
            o.dir.display(),
            listed.len()
        );
    }
    let mut p = v.open()?;
    let (mut photos, mut no_face, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    let mut sizes: Vec<AtSize> = o.eyes.iter().map(|_| AtSize::default()).collect();
    // one photo at a time, decoded once, every size cut from it, then dropped
    for (person, path) in listed {
        let frame = match load(&path) {
            Ok(f) => f,
            Err(e) => {
                unreadable.push(format!("{e:#}"));
                continue;
            }
        };
        let Some((lm, embedding)) = p
            .largest_face(&frame)?
            .and_then(|f| Some((f.observation.landmarks, f.observation.embedding?.vector)))
        else {
            no_face.push(path.display().to_string());
            continue;
        };
        let k = photos.len();
        photos.push(Photo { person, embedding });
        for (&d, at) in o.eyes.iter().zip(sizes.iter_mut()) {
            let factor = d / iod(&lm).max(1e-3);
            if factor >= 1.0 {
                continue; // this photo's face is not larger than D: nothing to reduce
            }
            at.larger += 1;
            let small = reduce(&frame, factor)
                .and_then(|f| motion_blur(&f, o.blur))
                .with_context(|| path.display().to_string())?;
            let centre = [
                lm.iter().map(|q| q[0]).sum::<f32>() / 5.0 * factor,
                lm.iter().map(|q| q[1]).sum::<f32>() / 5.0 * factor,
            ];
            let canvas = place(&small, centre, fw, fh)?;
            if let Some(face) = p.largest_face(&canvas)? {
                let passed = face.observation.quality.passed();
                if let Some(e) = face.observation.embedding {
                    at.probes.push(Probe {
                        photo: k,
                        embedding: e.vector,
                        passed,
                    });
                }
            }
        }
    }
    if photos.len() < 2 {
        bail!(
            "{}: fewer than two photos with a face (one folder per person, JPEG, PNG or WebP)",
            o.dir.display()
        );
    }
    let mut by_eyes = Map::new();
    let mut full = Scores::default();
    for (k, x) in photos.iter().enumerate() {
        full.add(&photos, k, &x.embedding);
    }
    by_eyes.insert("full".into(), full.json());
    for (&d, at) in o.eyes.iter().zip(sizes) {
        let (mut all, mut passed) = (Scores::default(), Scores::default());
        for probe in &at.probes {
            all.add(&photos, probe.photo, &probe.embedding);
            if probe.passed {
                passed.add(&photos, probe.photo, &probe.embedding);
            }
        }
        by_eyes.insert(
            format!("{d}"),
            json!({
                "photos_larger": at.larger,
                "found": at.probes.len(),
                "passed_gate": at.probes.iter().filter(|q| q.passed).count(),
                "all_found": all.json(),
                "gate_passed": passed.json(),
            }),
        );
    }
    Ok(json!({
        "dir": o.dir.display().to_string(),
        "frame": [fw, fh],
        "blur": o.blur,
        "people": people.len(),
        "photos": photos.len(),
        "no_face": no_face,
        "unreadable": unreadable,
        "gate_min_inter_ocular": p.quality.min_inter_ocular,
        "detector": p.detector.manifest().tag(),
        "embedder": p.embedder.manifest().tag(),
        "by_eyes": by_eyes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_puts_the_centre_in_the_middle_and_cuts_what_falls_outside() {
        // a 4x2 image, pixel (x, y) = [10x + y, 0, 0]
        let rgb: Vec<u8> = (0..2u8)
            .flat_map(|y| (0..4u8).flat_map(move |x| [10 * x + y, 0, 0]))
            .collect();
        let small = Frame::from_rgb(4, 2, rgb).unwrap();
        // centre (1, 1) at the middle (2, 2) of a 4x4 frame: offset (1, 1)
        let f = place(&small, [1.0, 1.0], 4, 4).unwrap();
        let px = |x: usize, y: usize| f.rgb()[(y * 4 + x) * 3];
        assert_eq!(px(0, 0), 128, "outside the image: grey");
        assert_eq!(px(1, 1), 0, "the image's (0, 0)");
        assert_eq!(px(3, 2), 21, "the image's (2, 1)");
        assert_eq!(px(1, 3), 128, "below the image");
        // the image's right column falls outside the frame
        let far = place(&small, [3.0, 0.0], 4, 4).unwrap();
        assert_eq!(far.rgb()[(2 * 4 + 3) * 3], 128);
        assert_eq!(far.rgb()[(2 * 4 + 2) * 3], 30, "the image's (3, 0)");
    }

    #[test]
    fn motion_blur_averages_along_the_row_only() {
        // one bright pixel in a dark 5x2 image
        let mut rgb = vec![0u8; 5 * 2 * 3];
        rgb[2 * 3] = 90;
        let f = Frame::from_rgb(5, 2, rgb).unwrap();
        let b = motion_blur(&f, 3).unwrap();
        let row0: Vec<u8> = (0..5).map(|x| b.rgb()[x * 3]).collect();
        assert_eq!(row0, vec![0, 30, 30, 30, 0]);
        assert!(
            (0..5).all(|x| b.rgb()[(5 + x) * 3] == 0),
            "the next row untouched"
        );
        assert_eq!(motion_blur(&f, 1).unwrap().rgb(), f.rgb());
    }
}
