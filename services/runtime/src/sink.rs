//! The one decision sink of every driver (`serve`, `run-scenario`, `bench pipeline`): accepted
//! tracks become check-ins through the [`LedgerWriter`], review decisions become review items
//! with the track's best aligned crop, unknown tracks are counted as visitors (the matcher's
//! visitor clustering keeps them; nobody is checked in).

use crate::writer::{Committed, GroupPort, LedgerPort, LedgerWriter};
use crate::{face_check_in, track_key};
use rollcall_domain::matcher::debounce::{Decision, Outcome};
use rollcall_domain::matcher::tracker::TrackId;
use rollcall_domain::Frame;
use rollcall_ledger::{NewReviewItem, ReviewCandidate, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tokio::task::JoinHandle;

/// The best-quality aligned crop of each open track (what a review item shows staff).
#[derive(Default)]
pub struct BestCrops {
    by_track: HashMap<TrackId, (f32, Frame)>,
}

impl BestCrops {
    /// Bound on tracks held (a track normally leaves with its decision).
    const MAX: usize = 4096;

    pub fn update(&mut self, tracks: &[TrackId], qualities: &[f32], crops: Vec<Frame>) {
        for ((t, q), crop) in tracks.iter().zip(qualities).zip(crops) {
            match self.by_track.get(t) {
                Some((best, _)) if *best >= *q => {}
                _ => {
                    if self.by_track.len() >= Self::MAX && !self.by_track.contains_key(t) {
                        continue;
                    }
                    self.by_track.insert(t.clone(), (*q, crop));
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_track.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_track.is_empty()
    }

    /// Removes the track's crop; for a review decision, writes it as a JPEG under
    /// `data_dir/crops/review/` and returns its path relative to `data_dir`.
    pub fn take_saved(&mut self, d: &Decision, data_dir: &Path) -> Option<PathBuf> {
        let (_, crop) = self.by_track.remove(&d.track)?;
        if !matches!(d.outcome, Outcome::Review(_)) {
            return None;
        }
        let name = format!(
            "{}-{}-{}.jpg",
            d.track.camera,
            d.track.seq,
            d.first_seen.timestamp_millis()
        );
        let rel = Path::new("crops")
            .join("review")
            .join(rollcall_gallery::students::path_component(&name));
        let path = data_dir.join(&rel);
        let write = || -> Result<(), String> {
            std::fs::create_dir_all(path.parent().unwrap_or(data_dir))
                .map_err(|e| e.to_string())?;
            let img = image::RgbImage::from_raw(crop.width(), crop.height(), crop.rgb().to_vec())
                .ok_or("crop size")?;
            img.save_with_format(&path, image::ImageFormat::Jpeg)
                .map_err(|e| e.to_string())
        };
        match write() {
            Ok(()) => Some(rel),
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the review crop");
                None
            }
        }
    }
}

/// See the module docs.
pub struct DecisionSink<P: LedgerPort = GroupPort> {
    store: Store,
    pub writer: LedgerWriter<P>,
    /// Review crops are written under `data_dir/crops/review/`.
    data_dir: PathBuf,
    crops: BestCrops,
    /// Decisions by kind (`accept`, `review`, `unknown`).
    pub decisions: BTreeMap<&'static str, u64>,
    /// Review items the ledger did not take (logged).
    pub review_errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Review items being written.
    pending: Vec<JoinHandle<()>>,
}

impl<P: LedgerPort> DecisionSink<P> {
    pub fn new(store: Store, writer: LedgerWriter<P>, data_dir: PathBuf) -> Self {
        Self {
            store,
            writer,
            data_dir,
            crops: BestCrops::default(),
            decisions: BTreeMap::new(),
            review_errors: Default::default(),
            pending: Vec::new(),
        }
    }

    /// Keeps the best crop of each track seen in a frame.
    pub fn observe(&mut self, tracks: &[TrackId], qualities: &[f32], crops: Vec<Frame>) {
        self.crops.update(tracks, qualities, crops);
    }

    /// Waits until every routed decision is written: review items and check-ins (recorded or
    /// parked).
    pub async fn flush(&mut self) {
        for h in self.pending.drain(..) {
            let _ = h.await;
        }
        self.writer.drain().await;
    }

    /// Tracks whose crop is held (bounded).
    pub fn held_crops(&self) -> usize {
        self.crops.len()
    }

    /// Routes one decision (see the module docs). An accepted track's check-in is handed to the
    /// writer; its handle says what became of it (a driver may await it or let it run).
    pub async fn route(&mut self, d: &Decision) -> Option<JoinHandle<Committed>> {
        *self.decisions.entry(d.kind()).or_default() += 1;
        let crop = self.crops.take_saved(d, &self.data_dir);
        let line = d.line();
        match &d.outcome {
            Outcome::Review(r) => {
                // The review queue (idempotent on the track key).
                let item = NewReviewItem {
                    campus_id: d.campus.to_string(),
                    camera_id: Some(line.camera.clone()),
                    track_key: track_key(d),
                    seen_at: d.first_seen,
                    reason: r.reason.as_str().to_string(),
                    crop_path: crop.map(|p| p.display().to_string()),
                    candidates: r
                        .candidates
                        .iter()
                        .map(|c| ReviewCandidate {
                            student_id: c.student.to_string(),
                            score: c.similarity,
                        })
                        .collect(),
                };
                // beside the caller: a slow or absent database never holds up recognition
                let store = self.store.clone();
                let errors = self.review_errors.clone();
                self.pending.retain(|h| !h.is_finished());
                self.pending.push(tokio::spawn(async move {
                    if let Err(e) = store.create_review_item(&item).await {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(error = %e, "cannot queue the review item");
                    }
                }));
            }
            Outcome::Unknown => {
                tracing::info!(camera = %line.camera, track = line.track, visitor = ?d.visitor.as_ref().map(|v| v.visitor.0), "unknown visitor");
            }
            Outcome::Accept { .. } => {}
        }
        tracing::info!(decision = %line.decision, student = ?line.student, camera = %line.camera, track = line.track, "decision");
        let ci = face_check_in(d)?;
        Some(self.writer.submit(ci).await)
    }
}
