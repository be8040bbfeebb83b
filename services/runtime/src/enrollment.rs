//! Enrollment and identification: photos through the face pipeline into a [`Gallery`].
//!
//! These are the library calls behind `rollcall enroll | identify` and the API's enrollment:
//! * [`enroll`]: refused outright unless the student has valid guardian consent (checked
//!   through the [`Safeguards`]' consent gate, see `rollcall_domain::privacy`); every enrolled
//!   template is also sealed (AES-256-GCM) into the database as its canonical copy;
//!   every photo must give exactly one face passing the enrollment quality gate;
//!   a 1:N duplicate check refuses (or flags) a photo that matches a *different* student above
//!   the accept threshold; at most `max_templates` per student are kept (the best by quality);
//!   aligned crops are written under the crops directory for the review UI. The face work
//!   (decode, detect, align, embed: seconds of CPU for a batch of photos) runs on tokio's
//!   blocking pool (`spawn_blocking`), never on the async threads that serve requests and the
//!   live path.
//! * [`identify`]: every face of a photo, its top candidates and the decision band.
//!
//! Erasure and the per-student lock are the gallery's (`rollcall_gallery::students`): they
//! need no model.

use chrono::{DateTime, Utc};
use rollcall_domain::face::Quality;
use rollcall_domain::gallery::{best_per_student, ModelRef, NewTemplate, Template};
use rollcall_domain::privacy::{ConsentError, ConsentProof, PrivacyStore};
use rollcall_domain::{CampusId, Frame, StudentId, TenantId};
use rollcall_gallery::students::{student_crops_dir, student_lock};
use rollcall_gallery::vault::{self, Keyring, VaultError};
use rollcall_gallery::{new_template_id, Gallery, GalleryError, SearchQuery, TemplateId};
use rollcall_vision::decode::{decode_bytes, encode_jpeg, DecodeLimits};
use rollcall_vision::manifest::Thresholds;
use rollcall_vision::pipeline::EmbedPolicy;
use rollcall_vision::quality::{assess, QualityConfig};
use rollcall_vision::{FacePipeline, VisionError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A face pipeline shared between enrollments (one at a time) and moved onto the blocking pool
/// for the face work.
pub type SharedPipeline = Arc<tokio::sync::Mutex<FacePipeline>>;

/// Wraps a pipeline for [`enroll`].
pub fn shared(p: FacePipeline) -> SharedPipeline {
    Arc::new(tokio::sync::Mutex::new(p))
}

/// What enrollment does with a photo that looks like another enrolled student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DuplicatePolicy {
    /// Refuse the photo (default).
    #[default]
    Refuse,
    /// Enroll it, but report the possible duplicate.
    Flag,
}

#[derive(Debug, Clone)]
pub struct EnrollConfig {
    /// Templates kept per student (the best by quality).
    pub max_templates: usize,
    pub duplicates: DuplicatePolicy,
    /// 1:N thresholds (the duplicate check uses `accept`).
    pub thresholds: Thresholds,
    /// The stricter quality gate for enrollment photos.
    pub quality: QualityConfig,
    /// Where aligned crops are kept: `<crops>/<tenant>/<student>/<template>.jpg`.
    pub crops_dir: PathBuf,
    pub decode: DecodeLimits,
}

impl EnrollConfig {
    pub fn new(crops_dir: impl Into<PathBuf>, thresholds: Thresholds) -> Self {
        Self {
            max_templates: 5,
            duplicates: DuplicatePolicy::Refuse,
            thresholds,
            quality: QualityConfig::enrollment(),
            crops_dir: crops_dir.into(),
            decode: DecodeLimits::default(),
        }
    }
}

/// Who is being enrolled, and with which photos (name, encoded bytes).
#[derive(Debug, Clone)]
pub struct EnrollRequest {
    pub tenant: TenantId,
    pub student: StudentId,
    /// Campuses where the student may check in; empty = every campus of the school.
    pub campuses: Vec<CampusId>,
    pub photos: Vec<(String, Vec<u8>)>,
    pub now: DateTime<Utc>,
}

/// Why a photo was not enrolled. `code` is stable and machine-readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub photo: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PossibleDuplicate {
    pub photo: String,
    pub other_student: StudentId,
    pub similarity: f32,
    /// Whether the photo was refused because of it (policy `refuse`).
    pub refused: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolledPhoto {
    pub photo: String,
    pub template_id: TemplateId,
    pub quality: f32,
    pub crop: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollReport {
    pub student: StudentId,
    pub model: ModelRef,
    pub enrolled: Vec<EnrolledPhoto>,
    pub rejected: Vec<Rejection>,
    pub duplicates: Vec<PossibleDuplicate>,
    /// Templates removed to respect the per-student cap (the worst by quality).
    pub dropped_templates: Vec<TemplateId>,
    /// Templates of this student after enrollment.
    pub templates: usize,
    /// Templates of this student made with another model (they are never searched with this
    /// model's vectors; the student needs re-enrolling with this model).
    pub stale_model_templates: usize,
}

/// What every enrollment goes through: the consent gate and the encrypted canonical store
/// (both on the ledger's [`PrivacyStore`]) and the template keys.
#[derive(Clone, Copy)]
pub struct Safeguards<'a> {
    pub store: &'a dyn PrivacyStore,
    pub keys: &'a Keyring,
}

/// Enrollment failures that are not about one photo.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// No valid guardian consent: nothing was analysed or stored.
    #[error(transparent)]
    Consent(#[from] ConsentError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no photo given")]
    NoPhotos,
    /// The blocking task doing the face work did not finish (it panicked or the runtime shut
    /// down): nothing was stored.
    #[error("the enrollment's face work did not finish: {0}")]
    Worker(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollError + '_ {
    move |source| EnrollError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The single passing face of a photo, or the reason it cannot be enrolled.
fn enrollment_face(
    p: &mut FacePipeline,
    cfg: &EnrollConfig,
    bytes: &[u8],
) -> Result<(Frame, Quality, rollcall_domain::face::Embedding), (String, String)> {
    let frame = decode_bytes(bytes, &cfg.decode).map_err(|e| {
        let code = match e {
            VisionError::ImageTooLarge { .. } | VisionError::InputTooLarge { .. } => "too_large",
            VisionError::NeedsConversion { .. } => "unsupported_photo_format",
            _ => "not_an_image",
        };
        (code.to_string(), e.to_string())
    })?;
    let faces = p
        .analyze(&frame, EmbedPolicy::None)
        .map_err(|e| ("vision_error".to_string(), e.to_string()))?;
    match faces.len() {
        0 => return Err(("no_face".into(), "no face found".into())),
        1 => {}
        n => {
            return Err((
                "several_faces".into(),
                format!("{n} faces found; an enrollment photo must show one person"),
            ))
        }
    }
    let f = &faces[0];
    let o = &f.observation;
    // Re-assess with the stricter enrollment gate.
    let q = assess(
        &cfg.quality,
        frame.width(),
        frame.height(),
        &o.bbox,
        o.quality.score,
        &o.landmarks,
        Some(&f.aligned),
    );
    if !q.passed() {
        let codes: Vec<&str> = q.reasons.iter().map(|r| r.code()).collect();
        return Err((
            codes.first().copied().unwrap_or("low_quality").to_string(),
            format!(
                "face fails the enrollment quality gate: {} (inter-ocular {:.0} px, sharpness {:.0}, yaw {:.0}°, pitch {:.0}°)",
                codes.join(", "),
                q.inter_ocular,
                q.sharpness,
                q.yaw,
                q.pitch
            ),
        ));
    }
    let emb = p
        .embedder
        .embed(&[&f.aligned])
        .map_err(|e| ("vision_error".to_string(), e.to_string()))?
        .pop()
        .ok_or_else(|| ("vision_error".to_string(), "no embedding".to_string()))?;
    Ok((f.aligned.clone(), q, emb))
}

/// The consent check repeated just before sealing: valid at `now` as before, and no
/// withdrawal recorded after the grant the first check relied on (whatever time the
/// withdrawal carries: one recorded during the enrollment is after `now`).
async fn recheck_consent(
    store: &dyn PrivacyStore,
    proof: &ConsentProof,
    now: DateTime<Utc>,
) -> Result<(), ConsentError> {
    let again = ConsentProof::check(store, proof.tenant(), proof.student(), now).await?;
    let history = store
        .consent_history(proof.tenant(), proof.student())
        .await?;
    let since = again.record().at.max(proof.record().at);
    if let Some(w) = history
        .iter()
        .rev()
        .find(|r| r.kind == rollcall_domain::privacy::FACE_CONSENT && !r.granted && r.at >= since)
    {
        return Err(ConsentError::Refused {
            tenant: proof.tenant().clone(),
            student: proof.student().clone(),
            status: rollcall_domain::privacy::ConsentStatus::Withdrawn {
                at: w.at,
                by: w.given_by.clone(),
            },
        });
    }
    Ok(())
}

/// Enrolls the photos of one student. Refused with [`EnrollError::Consent`] before any photo is
/// looked at unless the student has valid guardian consent at `req.now`, and again (nothing
/// kept) when the consent is no longer valid just before the templates are sealed (a
/// withdrawal recorded meanwhile). Enrollments and erasures of one student run one at a time
/// ([`student_lock`]). Photos that fail are
/// listed with their reason; the others are enrolled: sealed into the database first (the
/// canonical copy), then indexed in the gallery. Nothing is written for a refused photo.
pub async fn enroll(
    p: &SharedPipeline,
    gallery: &dyn Gallery,
    guard: &Safeguards<'_>,
    cfg: &EnrollConfig,
    mut req: EnrollRequest,
) -> Result<EnrollReport, EnrollError> {
    let _serial = student_lock(&req.tenant, &req.student).await;
    let proof = ConsentProof::check(guard.store, &req.tenant, &req.student, req.now).await?;
    if req.photos.is_empty() {
        return Err(EnrollError::NoPhotos);
    }
    // The face work, on the blocking pool with the pipeline's lock held.
    let photos = std::mem::take(&mut req.photos);
    let pipeline = p.clone().lock_owned().await;
    let face_cfg = cfg.clone();
    let (model, analysed) = tokio::task::spawn_blocking(move || {
        let mut p = pipeline;
        let model = ModelRef {
            model_id: p.embedder.manifest().id.clone(),
            model_version: p.embedder.manifest().version.clone(),
        };
        let analysed: Vec<_> = photos
            .into_iter()
            .map(|(name, bytes)| {
                let face = enrollment_face(&mut p, &face_cfg, &bytes);
                (name, face)
            })
            .collect();
        (model, analysed)
    })
    .await
    .map_err(|e| EnrollError::Worker(e.to_string()))?;
    let mut rejected = Vec::new();
    let mut duplicates = Vec::new();
    let mut accepted: Vec<(String, Frame, NewTemplate)> = Vec::new();
    for (name, face) in analysed {
        let (crop, q, emb) = match face {
            Ok(x) => x,
            Err((code, message)) => {
                rejected.push(Rejection {
                    photo: name.clone(),
                    code,
                    message,
                });
                continue;
            }
        };
        // 1:N duplicate check against every *other* student of the school.
        let mut query = SearchQuery::new(req.tenant.clone(), emb.vector.clone(), 10);
        query.model = Some(model.clone());
        let hits = gallery.search(&query).await?;
        let other = best_per_student(&hits, 10)
            .into_iter()
            .find(|c| c.student != req.student && c.similarity >= cfg.thresholds.accept);
        if let Some(c) = other {
            let refused = cfg.duplicates == DuplicatePolicy::Refuse;
            duplicates.push(PossibleDuplicate {
                photo: name.clone(),
                other_student: c.student.clone(),
                similarity: c.similarity,
                refused,
            });
            if refused {
                rejected.push(Rejection {
                    photo: name.clone(),
                    code: "possible_duplicate".into(),
                    message: format!(
                        "possible duplicate enrollment of {} (similarity {:.2} >= {:.2})",
                        c.student, c.similarity, cfg.thresholds.accept
                    ),
                });
                continue;
            }
        }
        accepted.push((
            name.clone(),
            crop,
            NewTemplate {
                template_id: new_template_id(),
                embedding: emb,
                quality: q.overall,
            },
        ));
    }
    // Keep the best `max_templates` among existing (same model) and new templates.
    let existing = match gallery.student_templates(&req.tenant, &req.student).await {
        Ok(t) => t,
        Err(GalleryError::UnknownStudent { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let stale_model_templates = existing.iter().filter(|m| m.model() != model).count();
    let mut pool: Vec<(f32, TemplateId, bool)> = existing
        .iter()
        .filter(|m| m.model() == model)
        .map(|m| (m.quality, m.template_id, false))
        .chain(
            accepted
                .iter()
                .map(|(_, _, t)| (t.quality, t.template_id, true)),
        )
        .collect();
    pool.sort_by(|a, b| b.0.total_cmp(&a.0));
    let cap = cfg.max_templates.max(1);
    let keep: Vec<TemplateId> = pool.iter().take(cap).map(|x| x.1).collect();
    let dropped_existing: Vec<TemplateId> = pool
        .iter()
        .skip(cap)
        .filter(|x| !x.2)
        .map(|x| x.1)
        .collect();
    let dir = student_crops_dir(&cfg.crops_dir, &req.tenant, &req.student);
    let mut enrolled = Vec::new();
    let mut new_templates = Vec::new();
    for (name, crop, t) in accepted {
        if !keep.contains(&t.template_id) {
            rejected.push(Rejection {
                photo: name,
                code: "not_kept".into(),
                message: format!("the student already has {cap} better templates (cap {cap})"),
            });
            continue;
        }
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(format!("{}.jpg", t.template_id));
        let jpg = encode_jpeg(&crop, 92)?;
        std::fs::write(&path, jpg).map_err(io_err(&path))?;
        enrolled.push(EnrolledPhoto {
            photo: name,
            template_id: t.template_id,
            quality: t.quality,
            crop: path,
        });
        new_templates.push(t);
    }
    if !new_templates.is_empty() {
        // consent again: a withdrawal recorded while the photos were processed wins
        if let Err(e) = recheck_consent(guard.store, &proof, req.now).await {
            for p in &enrolled {
                let _ = std::fs::remove_file(&p.crop);
            }
            let _ = std::fs::remove_dir(&dir); // only when empty
            return Err(e.into());
        }
        let templates = Template::for_student(
            &req.tenant,
            &req.student,
            &req.campuses,
            new_templates,
            req.now,
        );
        vault::store_templates(guard.keys, guard.store, &templates).await?;
        let ids: Vec<TemplateId> = templates.iter().map(|t| t.meta.template_id).collect();
        if let Err(e) = gallery.upsert(templates).await {
            // keep the database and the index in step: the canonical copies go too
            let _ = guard.store.delete_sealed_ids(&req.tenant, &ids).await;
            for id in &ids {
                let _ = std::fs::remove_file(dir.join(format!("{id}.jpg")));
            }
            return Err(e.into());
        }
    }
    if !dropped_existing.is_empty() {
        guard
            .store
            .delete_sealed_ids(&req.tenant, &dropped_existing)
            .await
            .map_err(VaultError::from)?;
        gallery
            .delete_templates(&req.tenant, &dropped_existing)
            .await?;
        for id in &dropped_existing {
            let _ = std::fs::remove_file(dir.join(format!("{id}.jpg")));
        }
    }
    let templates = match gallery.student_templates(&req.tenant, &req.student).await {
        Ok(t) => t.iter().filter(|m| m.model() == model).count(),
        Err(GalleryError::UnknownStudent { .. }) => 0,
        Err(e) => return Err(e.into()),
    };
    Ok(EnrollReport {
        student: req.student,
        model,
        enrolled,
        rejected,
        duplicates,
        dropped_templates: dropped_existing,
        templates,
        stale_model_templates,
    })
}

/// The decision band of a similarity, as the live matcher uses it.
pub fn band(similarity: f32, t: &Thresholds) -> &'static str {
    if similarity >= t.accept {
        "accept"
    } else if similarity >= t.review {
        "review"
    } else {
        "unknown"
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub student: StudentId,
    pub similarity: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentifiedFace {
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub quality_passed: bool,
    pub quality_reasons: Vec<String>,
    pub candidates: Vec<Candidate>,
    /// `accept`, `review` or `unknown`. A face failing the quality gate is never accepted.
    pub decision: String,
    /// Similarity margin of the best candidate over the second (1.0 when alone).
    pub margin: f32,
}

/// Every face of `frame`, searched in the tenant's gallery (optionally one campus).
/// The face work runs on the blocking pool, as enrollment's does.
pub async fn identify(
    p: &SharedPipeline,
    gallery: &dyn Gallery,
    frame: &Frame,
    tenant: &TenantId,
    campus: Option<&CampusId>,
    top_k: usize,
    t: &Thresholds,
) -> Result<Vec<IdentifiedFace>, EnrollError> {
    let pipeline = p.clone().lock_owned().await;
    let frame = frame.clone();
    let (faces, model) = tokio::task::spawn_blocking(move || {
        let mut p = pipeline;
        let model = ModelRef {
            model_id: p.embedder.manifest().id.clone(),
            model_version: p.embedder.manifest().version.clone(),
        };
        p.analyze(&frame, EmbedPolicy::All).map(|f| (f, model))
    })
    .await
    .map_err(|e| EnrollError::Worker(e.to_string()))??;
    let mut out = Vec::new();
    for f in faces {
        let o = f.observation;
        let mut candidates = Vec::new();
        if let Some(e) = &o.embedding {
            let mut q = SearchQuery::new(tenant.clone(), e.vector.clone(), top_k.max(1) * 5);
            q.campus = campus.cloned();
            q.model = Some(model.clone());
            let hits = gallery.search(&q).await?;
            candidates = best_per_student(&hits, top_k.max(1))
                .into_iter()
                .map(|c| Candidate {
                    student: c.student,
                    similarity: c.similarity,
                })
                .collect();
        }
        let best = candidates.first().map(|c| c.similarity).unwrap_or(-1.0);
        let second = candidates.get(1).map(|c| c.similarity);
        let mut decision = band(best, t);
        if decision == "accept" && !o.quality.passed() {
            decision = "review";
        }
        out.push(IdentifiedFace {
            bbox: [o.bbox.x1, o.bbox.y1, o.bbox.x2, o.bbox.y2],
            quality_passed: o.quality.passed(),
            quality_reasons: o
                .quality
                .reasons
                .iter()
                .map(|r| r.code().to_string())
                .collect(),
            decision: if candidates.is_empty() {
                "unknown"
            } else {
                decision
            }
            .to_string(),
            margin: second.map(|s| best - s).unwrap_or(1.0),
            candidates,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands() {
        let t = Thresholds {
            verify: 0.33,
            accept: 0.4,
            review: 0.28,
        };
        assert_eq!(band(0.5, &t), "accept");
        assert_eq!(band(0.3, &t), "review");
        assert_eq!(band(0.1, &t), "unknown");
    }
}
