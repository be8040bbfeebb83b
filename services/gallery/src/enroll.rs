//! Enrollment, identification and erasure on top of the vision pipeline and a [`Gallery`].
//!
//! These are the library calls behind `rollcall enroll | identify | erase` and the API:
//! * [`enroll`]: refused outright unless the student has valid guardian consent (checked
//!   through the [`Safeguards`]' consent gate, see `rollcall_domain::privacy`); every enrolled
//!   template is also sealed (AES-256-GCM) into the database as its canonical copy;
//!   every photo must give exactly one face passing the enrollment quality gate;
//!   a 1:N duplicate check refuses (or flags) a photo that matches a *different* student above
//!   the accept threshold; at most `max_templates` per student are kept (the best by quality);
//!   aligned crops are written under the crops directory for the review UI.
//! * [`identify`]: every face of a photo, its top candidates and the decision band.
//! * [`erase`]: every template removed and physically purged, every crop deleted, a receipt.

use crate::vault::{self, Keyring, VaultError};
use crate::{new_template_id, Gallery, GalleryError, SearchQuery, TemplateId};
use chrono::{DateTime, Utc};
use rollcall_domain::face::Quality;
use rollcall_domain::gallery::{best_per_student, ModelRef, NewTemplate, Template};
use rollcall_domain::privacy::{ConsentError, ConsentProof, PrivacyStore};
use rollcall_domain::{CampusId, Frame, StudentId, TenantId};
use rollcall_vision::decode::{decode_bytes, encode_jpeg, DecodeLimits};
use rollcall_vision::manifest::Thresholds;
use rollcall_vision::pipeline::EmbedPolicy;
use rollcall_vision::quality::{assess, QualityConfig};
use rollcall_vision::{FacePipeline, VisionError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollError + '_ {
    move |source| EnrollError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file-system-safe name for an identifier: the one escaping helper (in the domain crate, so
/// that the API builds the same paths without depending on this crate).
pub use rollcall_domain::ids::path_component;

/// Directory holding a student's crops.
pub fn student_crops_dir(crops: &Path, tenant: &TenantId, student: &StudentId) -> PathBuf {
    rollcall_domain::ids::student_crops_dir(crops, tenant.as_str(), student.as_str())
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

/// One lock per (school, student) in this process: an enrollment holds it from its first
/// consent check until its templates are stored, an erasure (and so a consent withdrawal's
/// erasure) while it removes everything, so the two never interleave. (Another process is
/// covered by the consent check enrollment repeats just before sealing.)
pub async fn student_lock(
    tenant: &TenantId,
    student: &StudentId,
) -> tokio::sync::OwnedMutexGuard<()> {
    type Locks =
        std::collections::HashMap<(String, String), std::sync::Arc<tokio::sync::Mutex<()>>>;
    static LOCKS: std::sync::OnceLock<std::sync::Mutex<Locks>> = std::sync::OnceLock::new();
    let m = {
        let mut g = LOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // forget the locks nobody holds or waits for
        if g.len() > 1024 {
            g.retain(|_, l| std::sync::Arc::strong_count(l) > 1);
        }
        g.entry((tenant.as_str().to_string(), student.as_str().to_string()))
            .or_default()
            .clone()
    };
    m.lock_owned().await
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
    p: &mut FacePipeline,
    gallery: &dyn Gallery,
    guard: &Safeguards<'_>,
    cfg: &EnrollConfig,
    req: EnrollRequest,
) -> Result<EnrollReport, EnrollError> {
    let _serial = student_lock(&req.tenant, &req.student).await;
    let proof = ConsentProof::check(guard.store, &req.tenant, &req.student, req.now).await?;
    if req.photos.is_empty() {
        return Err(EnrollError::NoPhotos);
    }
    let model = ModelRef {
        model_id: p.embedder.manifest().id.clone(),
        model_version: p.embedder.manifest().version.clone(),
    };
    let mut rejected = Vec::new();
    let mut duplicates = Vec::new();
    let mut accepted: Vec<(String, Frame, NewTemplate)> = Vec::new();
    for (name, bytes) in &req.photos {
        let (crop, q, emb) = match enrollment_face(p, cfg, bytes) {
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
pub async fn identify(
    p: &mut FacePipeline,
    gallery: &dyn Gallery,
    frame: &Frame,
    tenant: &TenantId,
    campus: Option<&CampusId>,
    top_k: usize,
    t: &Thresholds,
) -> Result<Vec<IdentifiedFace>, EnrollError> {
    let faces = p.analyze(frame, EmbedPolicy::All)?;
    let model = ModelRef {
        model_id: p.embedder.manifest().id.clone(),
        model_version: p.embedder.manifest().version.clone(),
    };
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

/// What an erasure removed, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureReceipt {
    pub tenant: TenantId,
    pub student: StudentId,
    pub erased_at: DateTime<Utc>,
    pub templates_removed: Vec<TemplateId>,
    pub crop_files_removed: usize,
    pub purge: crate::PurgeReport,
    /// Templates of the student still found after the purge (must be 0).
    pub templates_remaining: usize,
}

/// Removes every template of a student, purges the gallery physically, deletes the crops.
/// A student with no templates is not an error (erasure is idempotent): the receipt says 0.
pub async fn erase(
    gallery: &dyn Gallery,
    crops_dir: &Path,
    tenant: &TenantId,
    student: &StudentId,
    now: DateTime<Utc>,
) -> Result<ErasureReceipt, EnrollError> {
    let metas = match gallery.student_templates(tenant, student).await {
        Ok(m) => m,
        Err(GalleryError::UnknownStudent { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if !metas.is_empty() {
        match gallery.delete_student(tenant, student).await {
            Ok(_) | Err(GalleryError::UnknownStudent { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let purge = gallery.purge().await?;
    let dir = student_crops_dir(crops_dir, tenant, student);
    let mut crop_files_removed = 0;
    if dir.is_dir() {
        crop_files_removed = std::fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter(|e| e.as_ref().map(|e| e.path().is_file()).unwrap_or(false))
            .count();
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let templates_remaining = match gallery.student_templates(tenant, student).await {
        Ok(m) => m.len(),
        Err(GalleryError::UnknownStudent { .. }) => 0,
        Err(e) => return Err(e.into()),
    };
    Ok(ErasureReceipt {
        tenant: tenant.clone(),
        student: student.clone(),
        erased_at: now,
        templates_removed: metas.iter().map(|m| m.template_id).collect(),
        crop_files_removed,
        purge,
        templates_remaining,
    })
}

/// Students of a tenant with templates of another model than `model` (they need re-enrolling).
pub async fn needing_reenrollment(
    gallery: &dyn Gallery,
    tenant: &TenantId,
    model: &ModelRef,
) -> Result<Vec<StudentId>, GalleryError> {
    let mut v: Vec<StudentId> = gallery
        .tenant_templates(tenant)
        .await?
        .into_iter()
        .filter(|t| t.meta.model() != *model)
        .map(|t| t.meta.student)
        .collect();
    v.sort();
    v.dedup();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components_cannot_escape() {
        assert_eq!(path_component("s-001_a"), "s-001_a");
        assert_eq!(path_component("../x"), "%2E%2E%2Fx");
        assert!(!path_component("a/b").contains('/'));
    }

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
