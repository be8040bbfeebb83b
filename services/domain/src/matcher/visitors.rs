//! Repeated unknown visitors, clustered for staff (issue 5: "repeated unknown visitors may be
//! clustered").
//!
//! Each unknown track contributes one embedding (the tracker's running-mean appearance, else the
//! best shot's). Online leader clustering: the embedding joins the most similar visitor whose
//! centroid is at least `similarity` away in cosine, and the centroid becomes the renormalised
//! mean of its members; otherwise it starts a new visitor. The number of visitors is bounded
//! (least recently seen forgotten first) and visitors not seen for `forget_after` are dropped on
//! [`UnknownVisitors::prune`]. Re-adding a track already counted changes nothing.

use super::tracker::{duration_millis, ObsRef, TrackId};
use crate::face::Embedding;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Clustering settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitorConfig {
    /// Minimum cosine between an embedding and a visitor's centroid to join it.
    pub similarity: f32,
    /// Visitors kept at most.
    pub max_visitors: usize,
    /// Visitors not seen for this long are forgotten by `prune`.
    #[serde(with = "duration_millis")]
    pub forget_after: Duration,
    /// Track ids remembered per visitor (the most recent).
    pub tracks_kept: usize,
}

impl Default for VisitorConfig {
    fn default() -> Self {
        Self {
            similarity: 0.5,
            max_visitors: 512,
            forget_after: Duration::days(14),
            tracks_kept: 16,
        }
    }
}

/// A setting out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("visitor config: {0}")]
pub struct VisitorConfigError(pub String);

impl VisitorConfig {
    pub fn validate(&self) -> Result<(), VisitorConfigError> {
        if !(-1.0..=1.0).contains(&self.similarity) {
            return Err(VisitorConfigError("similarity must be in [-1, 1]".into()));
        }
        if self.max_visitors == 0 || self.tracks_kept == 0 {
            return Err(VisitorConfigError(
                "max_visitors and tracks_kept must be at least 1".into(),
            ));
        }
        if self.forget_after <= Duration::zero() {
            return Err(VisitorConfigError("forget_after must be positive".into()));
        }
        Ok(())
    }
}

/// An unknown visitor (a cluster of unknown tracks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VisitorId(pub u64);

/// Where an unknown track went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorSighting {
    pub visitor: VisitorId,
    /// Tracks counted for this visitor so far, this one included.
    pub visits: u32,
    /// This track started the visitor.
    pub new: bool,
}

/// One visitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visitor {
    pub id: VisitorId,
    pub centroid: Embedding,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub visits: u32,
    /// The most recent tracks, oldest first.
    pub tracks: VecDeque<TrackId>,
    /// Best-quality shot over its tracks, for the staff page.
    pub best_shot: ObsRef,
    pub best_quality: f32,
}

/// The clusters.
#[derive(Debug, Clone)]
pub struct UnknownVisitors {
    config: VisitorConfig,
    next_id: u64,
    visitors: Vec<Visitor>,
}

impl UnknownVisitors {
    pub fn new(config: VisitorConfig) -> Result<Self, VisitorConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            next_id: 1,
            visitors: Vec::new(),
        })
    }

    pub fn visitors(&self) -> &[Visitor] {
        &self.visitors
    }

    /// Visitors seen on at least `min_visits` tracks, most visits first (ties: most recent).
    pub fn repeated(&self, min_visits: u32) -> Vec<&Visitor> {
        let mut v: Vec<&Visitor> = self
            .visitors
            .iter()
            .filter(|v| v.visits >= min_visits)
            .collect();
        v.sort_by(|a, b| b.visits.cmp(&a.visits).then(b.last_seen.cmp(&a.last_seen)));
        v
    }

    /// Counts an unknown track seen at `at` with `embedding`.
    pub fn add(
        &mut self,
        track: &TrackId,
        at: DateTime<Utc>,
        embedding: &Embedding,
        shot: &ObsRef,
        quality: f32,
    ) -> VisitorSighting {
        if let Some(v) = self.visitors.iter().find(|v| v.tracks.contains(track)) {
            return VisitorSighting {
                visitor: v.id,
                visits: v.visits,
                new: false,
            };
        }
        let best = self
            .visitors
            .iter_mut()
            .filter_map(|v| v.centroid.cosine(embedding).map(|s| (s, v)))
            .filter(|(s, _)| *s >= self.config.similarity)
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.id.cmp(&a.1.id)));
        if let Some((_, v)) = best {
            v.centroid = mean(&v.centroid, v.visits, embedding);
            v.visits += 1;
            v.first_seen = v.first_seen.min(at);
            v.last_seen = v.last_seen.max(at);
            v.tracks.push_back(track.clone());
            while v.tracks.len() > self.config.tracks_kept {
                v.tracks.pop_front();
            }
            if quality > v.best_quality {
                v.best_quality = quality;
                v.best_shot = shot.clone();
            }
            return VisitorSighting {
                visitor: v.id,
                visits: v.visits,
                new: false,
            };
        }
        let id = VisitorId(self.next_id);
        self.next_id += 1;
        self.visitors.push(Visitor {
            id,
            centroid: embedding.clone(),
            first_seen: at,
            last_seen: at,
            visits: 1,
            tracks: VecDeque::from([track.clone()]),
            best_shot: shot.clone(),
            best_quality: quality,
        });
        if self.visitors.len() > self.config.max_visitors {
            let oldest = self
                .visitors
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.last_seen.cmp(&b.1.last_seen).then(a.1.id.cmp(&b.1.id)))
                .map(|(i, _)| i)
                .expect("non-empty");
            self.visitors.remove(oldest);
        }
        VisitorSighting {
            visitor: id,
            visits: 1,
            new: true,
        }
    }

    /// Forgets visitors not seen for `forget_after` before `now`.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let horizon = now - self.config.forget_after;
        self.visitors.retain(|v| v.last_seen >= horizon);
    }
}

/// `(c·n + e) / (n + 1)`, renormalised (unit vectors in, unit vector out).
fn mean(c: &Embedding, n: u32, e: &Embedding) -> Embedding {
    let n = n as f32;
    let mut v: Vec<f32> = c
        .vector
        .iter()
        .zip(&e.vector)
        .map(|(a, b)| (a * n + b) / (n + 1.0))
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    Embedding {
        model_id: c.model_id.clone(),
        model_version: c.model_version.clone(),
        vector: v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CameraId;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap() + Duration::minutes(min)
    }
    fn e(k: usize, j: f32) -> Embedding {
        let mut v = vec![0.0f32; 8];
        v[k] = 1.0;
        v[(k + 1) % 8] = j;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Embedding {
            model_id: "m".into(),
            model_version: "1".into(),
            vector: v.into_iter().map(|x| x / n).collect(),
        }
    }
    fn tr(n: u64) -> TrackId {
        TrackId::new(CameraId::new("door").unwrap(), n)
    }
    fn shot(n: u64) -> ObsRef {
        ObsRef {
            camera: CameraId::new("door").unwrap(),
            frame_at: t(n as i64),
            index: 0,
        }
    }

    #[test]
    fn the_same_stranger_is_one_visitor() {
        let mut u = UnknownVisitors::new(VisitorConfig::default()).unwrap();
        let a1 = u.add(&tr(1), t(0), &e(0, 0.1), &shot(1), 0.4);
        let b1 = u.add(&tr(2), t(5), &e(4, 0.0), &shot(2), 0.9);
        let a2 = u.add(&tr(3), t(60), &e(0, 0.3), &shot(3), 0.7);
        let a3 = u.add(&tr(4), t(120), &e(0, 0.0), &shot(4), 0.2);
        assert!(a1.new && b1.new && !a2.new && !a3.new);
        assert_ne!(a1.visitor, b1.visitor);
        assert_eq!((a2.visitor, a2.visits), (a1.visitor, 2));
        assert_eq!((a3.visitor, a3.visits), (a1.visitor, 3));
        // the same track again is not another visit
        assert_eq!(
            u.add(&tr(4), t(121), &e(0, 0.0), &shot(4), 0.2),
            VisitorSighting { new: false, ..a3 }
        );
        let rep = u.repeated(2);
        assert_eq!(rep.len(), 1);
        let v = rep[0];
        assert_eq!((v.first_seen, v.last_seen, v.visits), (t(0), t(120), 3));
        assert_eq!(v.best_shot, shot(3), "best quality, not best similarity");
        let n: f32 = v.centroid.vector.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
        // an embedding of another model never joins
        let mut other = e(0, 0.1);
        other.model_id = "other".into();
        assert!(u.add(&tr(5), t(130), &other, &shot(5), 0.5).new);
    }

    #[test]
    fn visitors_are_bounded_and_forgotten() {
        let cfg = VisitorConfig {
            max_visitors: 3,
            ..VisitorConfig::default()
        };
        let mut u = UnknownVisitors::new(cfg).unwrap();
        for k in 0..5u64 {
            u.add(&tr(k), t(k as i64), &e(k as usize, 0.0), &shot(k), 0.5);
        }
        let ids: Vec<u64> = u.visitors().iter().map(|v| v.id.0).collect();
        assert_eq!(ids, [3, 4, 5]);
        u.prune(t(4) + Duration::days(14));
        assert_eq!(u.visitors().len(), 1);
        u.prune(t(5) + Duration::days(14));
        assert!(u.visitors().is_empty());
        assert!(UnknownVisitors::new(VisitorConfig {
            similarity: 2.0,
            ..VisitorConfig::default()
        })
        .is_err());
    }
}
