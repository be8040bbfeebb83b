//! `rollcall demo`: the vision pipeline on the shared fixtures. Enrolls the first photo of each
//! person, then says who is who on every other photo and on the group photos, with the
//! decision band (accept / review / unknown) the live matcher would use.

use crate::cmd_vision::{load, VisionOpts};
use anyhow::{bail, Context};
use rollcall_vision::pipeline::EmbedPolicy;
use std::path::{Path, PathBuf};

fn sorted_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

pub fn run(v: &VisionOpts, fixtures: &Path) -> anyhow::Result<()> {
    let faces_dir = fixtures.join("faces");
    if !faces_dir.is_dir() {
        bail!(
            "{} has no faces/ folder (pass --fixtures DIR or set ROLLCALL_FIXTURES_DIR)",
            fixtures.display()
        );
    }
    let mut p = v.open()?;
    let t = p.thresholds();
    println!(
        "rollcall demo: detector {}, embedder {}; accept >= {:.2}, review >= {:.2}",
        p.detector.manifest().tag(),
        p.embedder.manifest().tag(),
        t.accept,
        t.review
    );
    let mut gallery: Vec<(String, Vec<f32>)> = Vec::new();
    let mut probes: Vec<(Option<String>, PathBuf)> = Vec::new();
    for person_dir in sorted_dir(&faces_dir)?.into_iter().filter(|p| p.is_dir()) {
        let person = person_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let photos = sorted_dir(&person_dir)?;
        let Some((first, rest)) = photos.split_first() else {
            continue;
        };
        match p.largest_face(&load(first)?)? {
            Some(f) if f.observation.quality.passed() => {
                let e = f.observation.embedding.expect("largest_face embeds");
                println!("enrolled {person:<20} from {}", rel(fixtures, first));
                gallery.push((person.clone(), e.vector));
            }
            _ => println!(
                "could not enroll {person}: no good face in {}",
                first.display()
            ),
        }
        probes.extend(rest.iter().map(|r| (Some(person.clone()), r.clone())));
    }
    let groups = fixtures.join("groups");
    if groups.is_dir() {
        probes.extend(sorted_dir(&groups)?.into_iter().map(|g| (None, g)));
    }
    println!();
    let (mut right, mut wrong, mut total) = (0, 0, 0);
    for (truth, path) in probes {
        let frame = load(&path)?;
        let faces = p.analyze(&frame, EmbedPolicy::Passing)?;
        let mut said = Vec::new();
        for f in faces.iter().filter(|f| f.observation.embedding.is_some()) {
            let e = &f.observation.embedding.as_ref().expect("filtered").vector;
            let mut scores: Vec<(f32, &str)> = gallery
                .iter()
                .map(|(who, g)| (rollcall_domain::face::dot(e, g), who.as_str()))
                .collect();
            scores.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (best, who) = scores.first().copied().unwrap_or((0.0, "-"));
            let band = if best >= t.accept {
                "accept"
            } else if best >= t.review {
                "review"
            } else {
                "unknown"
            };
            said.push(format!("{who} ({best:.2}, {band})"));
            if let Some(truth) = &truth {
                // Only the largest face of an identity photo is the labelled one.
                if faces.len() == 1 {
                    total += 1;
                    if band == "accept" && who == truth {
                        right += 1;
                    } else if band == "accept" {
                        wrong += 1;
                    }
                }
            }
        }
        println!(
            "{:<40} {}",
            rel(fixtures, &path),
            if said.is_empty() {
                "no usable face".to_string()
            } else {
                said.join(", ")
            }
        );
    }
    println!("\n{right} of {total} labelled probes recognised, {wrong} wrongly accepted");
    Ok(())
}

fn rel(base: &Path, p: &Path) -> String {
    p.strip_prefix(base).unwrap_or(p).display().to_string()
}
