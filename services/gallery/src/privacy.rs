//! Privacy by design for children's biometric data (issue 9), on the gallery and the ledger's
//! [`PrivacyStore`] port. The library calls behind `rollcall consent|privacy|export|erase` and
//! the API:
//!
//! * [`erase_student`]: complete erasure with a receipt: the student's templates deleted from
//!   the index and physically purged, the sealed (encrypted) canonical copies deleted and the
//!   database compacted, every enrollment crop and every review/hard-negative image that may
//!   show the student deleted; the ledger's financial and attendance history is kept (it holds
//!   no biometric data). The receipt is audited in the ledger.
//! * [`withdraw_consent`]: records the withdrawal and erases at once. The student keeps
//!   checking in through the non-face paths (manual, QR), which never needed biometrics.
//! * [`run_retention`]: the retention job (idempotent, logs and returns its counts).
//! * [`export_student`]: subject access export (JSON plus the enrollment photos).
//!
//! Files: enrollment crops live in `<data>/crops/<tenant>/<student>/`; review crops are the
//! files the ledger's review queue points at (paths relative to the data directory, normally
//! `crops/review/…`); unknown-visitor crops live under `<data>/crops/unknown/`. Only files
//! inside `<data>/crops` are ever deleted.

use crate::enroll::{self, student_crops_dir, EnrollError, ErasureReceipt};
use crate::vault::VaultError;
use crate::{Gallery, GalleryError};
use chrono::{DateTime, Duration, Months, Utc};
use rollcall_domain::gallery::TemplateId;
use rollcall_domain::privacy::{
    consent_status, ConsentRecord, ConsentStatus, PrivacyStore, PrivacyStoreError, FACE_CONSENT,
};
use rollcall_domain::{StudentId, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(transparent)]
    Store(#[from] PrivacyStoreError),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Enroll(Box<EnrollError>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl From<EnrollError> for PrivacyError {
    fn from(e: EnrollError) -> Self {
        PrivacyError::Enroll(Box::new(e))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PrivacyError + '_ {
    move |source| PrivacyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The crops directory of a data directory.
pub fn crops_dir(data: &Path) -> PathBuf {
    data.join("crops")
}

/// Where unknown-visitor crops are kept (the retention job deletes them by age).
pub fn unknown_crops_dir(data: &Path) -> PathBuf {
    crops_dir(data).join("unknown")
}

/// Where review crops are kept (the ledger's review items point at files in here).
pub fn review_crops_dir(data: &Path) -> PathBuf {
    crops_dir(data).join("review")
}

/// A ledger-referenced image path (relative to the data directory) resolved to a file inside
/// `<data>/crops`, or `None` when it would lead anywhere else.
fn resolve_crop(data: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        data.join(p)
    };
    if joined
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return None;
    }
    let crops = crops_dir(data);
    joined.starts_with(&crops).then_some(joined)
}

/// Removes a file; a file already gone counts as removed (idempotent).
fn remove_file(path: &Path) -> Result<bool, PrivacyError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
}

/// Every file under `dir` (recursively); nothing when it does not exist.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, PrivacyError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&d)(e)),
        };
        for e in rd {
            let e = e.map_err(io(&d))?;
            let ft = e.file_type().map_err(io(&e.path()))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Why biometric data was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// An erasure request (guardian, student, school).
    Request,
    /// Consent was withdrawn.
    ConsentWithdrawn,
    /// Consent expired, or was never valid (found by the retention job).
    NoValidConsent,
    /// No attendance for longer than the retention period.
    Inactive,
}

/// What a complete erasure removed, and when. Audited in the ledger (`biometric_erasure`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullErasureReceipt {
    /// Tenant, student, when; gallery index: templates removed and physically purged,
    /// enrollment crops deleted.
    #[serde(flatten)]
    pub gallery: ErasureReceipt,
    pub actor: String,
    pub reason: ErasureReason,
    /// Encrypted canonical templates deleted from the database.
    pub sealed_templates_removed: usize,
    /// Sealed templates of the student still found afterwards (must be 0).
    pub sealed_templates_remaining: usize,
    /// Review and hard-negative images that may show the student, deleted (paths relative to
    /// the data directory).
    pub review_images_removed: Vec<String>,
    /// What the database did to drop the deleted rows physically.
    pub database_compaction: String,
    /// What was deliberately kept.
    pub kept: Vec<String>,
}

impl FullErasureReceipt {
    /// Whether nothing biometric of the student remains in the stores this call reaches.
    pub fn complete(&self) -> bool {
        self.gallery.templates_remaining == 0 && self.sealed_templates_remaining == 0
    }
}

/// Erases every piece of biometric data of a student (see the module docs) and audits the
/// receipt. Idempotent: erasing again gives a receipt with nothing removed.
#[allow(clippy::too_many_arguments)]
pub async fn erase_student(
    gallery: &dyn Gallery,
    store: &dyn PrivacyStore,
    data: &Path,
    tenant: &TenantId,
    student: &StudentId,
    actor: &str,
    reason: ErasureReason,
    now: DateTime<Utc>,
) -> Result<FullErasureReceipt, PrivacyError> {
    if actor.trim().is_empty() {
        return Err(PrivacyError::Invalid(
            "the actor of an erasure must be named".into(),
        ));
    }
    // 1. The canonical encrypted copies first: a crash after this point leaves nothing the
    //    index could be rebuilt from.
    let sealed_templates_removed = store.delete_sealed_student(tenant, student).await?;
    // 2. The index (deleted and physically purged) and the enrollment crops.
    let g = enroll::erase(gallery, &crops_dir(data), tenant, student, now).await?;
    // 3. Review queue and hard-negative images that may show the student.
    let mut removed = Vec::new();
    for img in store.stored_images(tenant).await? {
        if !img.students.iter().any(|s| s == student.as_str()) {
            continue;
        }
        if let Some(path) = resolve_crop(data, &img.path) {
            remove_file(&path)?;
        }
        removed.push(img.path);
    }
    removed.sort();
    removed.dedup();
    store.forget_images(tenant, &removed).await?;
    // 4. Deleted rows physically gone from the database files.
    let database_compaction = store.compact().await?;
    let sealed_templates_remaining = store.sealed(tenant, Some(student)).await?.len();
    let receipt = FullErasureReceipt {
        actor: actor.to_string(),
        reason,
        gallery: g,
        sealed_templates_removed,
        sealed_templates_remaining,
        review_images_removed: removed,
        database_compaction,
        kept: vec![
            "profile, guardians and consent history".into(),
            "ledger entries, packages, attendance and check-in history (no biometric data)".into(),
            "audit trail, including this receipt".into(),
        ],
    };
    let detail = serde_json::to_string(&receipt)
        .map_err(|e| PrivacyError::Invalid(format!("receipt: {e}")))?;
    store
        .audit_privacy(tenant, actor, "biometric_erasure", student, &detail, now)
        .await?;
    tracing::info!(
        tenant = %tenant,
        student = %student,
        templates = receipt.gallery.templates_removed.len(),
        sealed = sealed_templates_removed,
        crops = receipt.gallery.crop_files_removed,
        review_images = receipt.review_images_removed.len(),
        "biometric data erased"
    );
    Ok(receipt)
}

/// Records a consent withdrawal (by a guardian or a staff member, with an optional document
/// reference) and erases the student's biometric data at once. Check-ins keep working through
/// the non-face sources (`AttendanceSource::Manual` / `Qr`).
#[allow(clippy::too_many_arguments)]
pub async fn withdraw_consent(
    gallery: &dyn Gallery,
    store: &dyn PrivacyStore,
    data: &Path,
    tenant: &TenantId,
    student: &StudentId,
    by: &str,
    document_ref: Option<String>,
    now: DateTime<Utc>,
) -> Result<FullErasureReceipt, PrivacyError> {
    store
        .append_consent(
            tenant,
            student,
            &ConsentRecord {
                kind: FACE_CONSENT.into(),
                granted: false,
                given_by: by.to_string(),
                at: now,
                document_ref,
                expires_at: None,
            },
        )
        .await?;
    erase_student(
        gallery,
        store,
        data,
        tenant,
        student,
        by,
        ErasureReason::ConsentWithdrawn,
        now,
    )
    .await
}

/// Retention periods. Nothing biometric is kept past them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionConfig {
    /// Pending review items' crops and unreferenced review crops (default 7 days).
    pub review_crop_days: u32,
    /// Unknown-visitor crops (default 7 days).
    pub unknown_crop_days: u32,
    /// Images of decided review items and hard negatives, from the decision (default 30 days).
    pub decided_review_days: u32,
    /// Templates of students with no attendance for this many months (default 36).
    pub inactive_template_months: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            review_crop_days: 7,
            unknown_crop_days: 7,
            decided_review_days: 30,
            inactive_template_months: 36,
        }
    }
}

impl RetentionConfig {
    /// Defaults overridden by `ROLLCALL_RETENTION_REVIEW_DAYS`, `…_UNKNOWN_DAYS`,
    /// `…_DECIDED_DAYS`, `…_INACTIVE_MONTHS`; a malformed value is an error naming it.
    pub fn from_env() -> Result<Self, PrivacyError> {
        let mut c = Self::default();
        for (var, field) in [
            ("ROLLCALL_RETENTION_REVIEW_DAYS", &mut c.review_crop_days),
            ("ROLLCALL_RETENTION_UNKNOWN_DAYS", &mut c.unknown_crop_days),
            (
                "ROLLCALL_RETENTION_DECIDED_DAYS",
                &mut c.decided_review_days,
            ),
            (
                "ROLLCALL_RETENTION_INACTIVE_MONTHS",
                &mut c.inactive_template_months,
            ),
        ] {
            if let Ok(v) = std::env::var(var) {
                *field = v.trim().parse().map_err(|_| {
                    PrivacyError::Invalid(format!("{var}={v:?} is not a whole number"))
                })?;
            }
        }
        Ok(c)
    }
}

/// A student whose biometric data the retention job erased.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionErasure {
    pub student: StudentId,
    pub reason: ErasureReason,
    pub templates_removed: usize,
    pub sealed_templates_removed: usize,
}

/// What one retention run did (all zeros on a second run at the same `now`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionReport {
    pub tenant: TenantId,
    pub now: DateTime<Utc>,
    pub config: RetentionConfig,
    pub pending_review_images_removed: usize,
    pub decided_review_images_removed: usize,
    pub unreferenced_review_crops_removed: usize,
    pub unknown_crops_removed: usize,
    pub students_erased: Vec<RetentionErasure>,
}

fn older_than(path: &Path, cutoff: DateTime<Utc>) -> Result<bool, PrivacyError> {
    let m = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(io(path))?;
    Ok(DateTime::<Utc>::from(m) <= cutoff)
}

/// The retention job for one school: deletes review crops, unknown-visitor crops and decided
/// review images past their TTL, and erases (completely, with audited receipts) the biometric
/// data of students without valid consent or without attendance for the inactivity period.
/// Ages of ledger-referenced images come from the ledger (created / decided), of other files
/// from their modification time. Idempotent.
pub async fn run_retention(
    gallery: &dyn Gallery,
    store: &dyn PrivacyStore,
    data: &Path,
    tenant: &TenantId,
    now: DateTime<Utc>,
    cfg: &RetentionConfig,
) -> Result<RetentionReport, PrivacyError> {
    let days = |d: u32| now - Duration::days(i64::from(d));
    let review_cut = days(cfg.review_crop_days);
    let decided_cut = days(cfg.decided_review_days);
    let unknown_cut = days(cfg.unknown_crop_days);
    let mut report = RetentionReport {
        tenant: tenant.clone(),
        now,
        config: cfg.clone(),
        pending_review_images_removed: 0,
        decided_review_images_removed: 0,
        unreferenced_review_crops_removed: 0,
        unknown_crops_removed: 0,
        students_erased: vec![],
    };

    // 1. Images the ledger points at.
    let images = store.stored_images(tenant).await?;
    let mut referenced: BTreeSet<PathBuf> = BTreeSet::new();
    let mut forget = Vec::new();
    for img in &images {
        let expired = match img.decided_at {
            Some(d) => d <= decided_cut,
            None => img.created_at <= review_cut,
        };
        let path = resolve_crop(data, &img.path);
        if !expired {
            if let Some(p) = path {
                referenced.insert(p);
            }
            continue;
        }
        if let Some(p) = &path {
            remove_file(p)?;
        }
        if img.decided_at.is_some() {
            report.decided_review_images_removed += 1;
        } else {
            report.pending_review_images_removed += 1;
        }
        forget.push(img.path.clone());
    }
    forget.sort();
    forget.dedup();
    store.forget_images(tenant, &forget).await?;

    // 2. Review crops nobody points at, and unknown-visitor crops, by age.
    for f in files_under(&review_crops_dir(data))? {
        if !referenced.contains(&f) && older_than(&f, review_cut)? && remove_file(&f)? {
            report.unreferenced_review_crops_removed += 1;
        }
    }
    for f in files_under(&unknown_crops_dir(data))? {
        if older_than(&f, unknown_cut)? && remove_file(&f)? {
            report.unknown_crops_removed += 1;
        }
    }

    // 3. Templates: students with biometric data (index or database) need valid consent and
    //    recent activity.
    let mut with_data: BTreeSet<StudentId> = gallery
        .tenant_templates(tenant)
        .await?
        .into_iter()
        .map(|t| t.meta.student)
        .collect();
    with_data.extend(
        store
            .sealed(tenant, None)
            .await?
            .into_iter()
            .map(|s| s.student),
    );
    let activity: BTreeMap<StudentId, DateTime<Utc>> =
        store.last_activity(tenant).await?.into_iter().collect();
    let inactive_cut = now
        .checked_sub_months(Months::new(cfg.inactive_template_months))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for student in with_data {
        let history = store.consent_history(tenant, &student).await?;
        let reason = match consent_status(&history, FACE_CONSENT, now) {
            ConsentStatus::Valid { .. } => match activity.get(&student) {
                Some(last) if *last > inactive_cut => None,
                _ => Some(ErasureReason::Inactive),
            },
            ConsentStatus::Withdrawn { .. } => Some(ErasureReason::ConsentWithdrawn),
            _ => Some(ErasureReason::NoValidConsent),
        };
        if let Some(reason) = reason {
            let r = erase_student(
                gallery,
                store,
                data,
                tenant,
                &student,
                "retention",
                reason,
                now,
            )
            .await?;
            report.students_erased.push(RetentionErasure {
                student,
                reason,
                templates_removed: r.gallery.templates_removed.len(),
                sealed_templates_removed: r.sealed_templates_removed,
            });
        }
    }
    tracing::info!(
        tenant = %tenant,
        pending_review = report.pending_review_images_removed,
        decided_review = report.decided_review_images_removed,
        unreferenced_review = report.unreferenced_review_crops_removed,
        unknown = report.unknown_crops_removed,
        students_erased = report.students_erased.len(),
        "retention run"
    );
    Ok(report)
}

/// What [`export_student`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportReport {
    pub student: StudentId,
    pub json: PathBuf,
    pub photos: Vec<PathBuf>,
    pub biometric_data_held: bool,
}

/// Subject access export: writes `<out>/<student>.json` (everything the ledger holds about the
/// student, plus what biometric data exists: template ids, models, dates; never vectors) and
/// copies the student's enrollment photos (the aligned crops kept) into `<out>/photos/`.
pub async fn export_student(
    gallery: &dyn Gallery,
    store: &dyn PrivacyStore,
    data: &Path,
    tenant: &TenantId,
    student: &StudentId,
    out: &Path,
    now: DateTime<Utc>,
) -> Result<ExportReport, PrivacyError> {
    let ledger: serde_json::Value =
        serde_json::from_str(&store.subject_record(tenant, student).await?)
            .map_err(|e| PrivacyError::Invalid(format!("subject record: {e}")))?;
    let metas = match gallery.student_templates(tenant, student).await {
        Ok(m) => m,
        Err(GalleryError::UnknownStudent { .. }) => vec![],
        Err(e) => return Err(e.into()),
    };
    let sealed = store.sealed(tenant, Some(student)).await?;
    let consent = consent_status(
        &store.consent_history(tenant, student).await?,
        FACE_CONSENT,
        now,
    );
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut photos = Vec::new();
    let crops = student_crops_dir(&crops_dir(data), tenant, student);
    let files = files_under(&crops)?;
    if !files.is_empty() {
        let pdir = out.join("photos");
        std::fs::create_dir_all(&pdir).map_err(io(&pdir))?;
        for f in files {
            let Some(name) = f.file_name() else { continue };
            let dst = pdir.join(name);
            std::fs::copy(&f, &dst).map_err(io(&f))?;
            photos.push(dst);
        }
    }
    let held = !metas.is_empty() || !sealed.is_empty() || !photos.is_empty();
    let mut ids: BTreeSet<TemplateId> = metas.iter().map(|m| m.template_id).collect();
    ids.extend(sealed.iter().map(|s| s.template_id));
    let doc = serde_json::json!({
        "student": student,
        "school": tenant,
        "exported_at": now,
        "ledger": ledger,
        "face_recognition_consent": consent,
        "biometric": {
            "held": held,
            "templates": metas.iter().map(|m| serde_json::json!({
                "template_id": m.template_id,
                "model_id": m.model_id,
                "model_version": m.model_version,
                "campuses": m.campuses,
                "quality": m.quality,
                "created_at": m.created_at,
            })).collect::<Vec<_>>(),
            "template_ids": ids,
            "encrypted_copies_in_database": sealed.len(),
            "enrollment_photos": photos.iter().filter_map(|p| p.file_name()).map(|n| format!("photos/{}", n.to_string_lossy())).collect::<Vec<_>>(),
            "note": "face templates are numbers computed from photos; they are not exported, only whether they exist",
        },
    });
    let json = out.join(format!("{}.json", enroll::path_component(student.as_str())));
    let text = serde_json::to_vec_pretty(&doc)
        .map_err(|e| PrivacyError::Invalid(format!("export: {e}")))?;
    std::fs::write(&json, text).map_err(io(&json))?;
    Ok(ExportReport {
        student: student.clone(),
        json,
        photos,
        biometric_data_held: held,
    })
}

/// Students of the tenant whose face-recognition consent is not valid at `now` although they
/// still have biometric data (what the next retention run will erase). For the UI.
pub async fn consent_problems(
    gallery: &dyn Gallery,
    store: &dyn PrivacyStore,
    tenant: &TenantId,
    now: DateTime<Utc>,
) -> Result<Vec<(StudentId, ConsentStatus)>, PrivacyError> {
    let students: BTreeSet<StudentId> = gallery
        .tenant_templates(tenant)
        .await?
        .into_iter()
        .map(|t| t.meta.student)
        .collect();
    let mut out = vec![];
    for s in students {
        let st = consent_status(&store.consent_history(tenant, &s).await?, FACE_CONSENT, now);
        if !st.is_valid() {
            out.push((s, st));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_crops_are_resolved() {
        let d = Path::new("/data");
        assert_eq!(
            resolve_crop(d, "crops/review/a.jpg"),
            Some(PathBuf::from("/data/crops/review/a.jpg"))
        );
        assert_eq!(resolve_crop(d, "crops/../rollcall.db"), None);
        assert_eq!(resolve_crop(d, "/etc/passwd"), None);
        assert_eq!(resolve_crop(d, "rollcall.db"), None);
        assert_eq!(
            resolve_crop(d, "/data/crops/unknown/x.jpg"),
            Some(PathBuf::from("/data/crops/unknown/x.jpg"))
        );
    }

    #[test]
    fn retention_defaults() {
        let c = RetentionConfig::default();
        assert_eq!(
            (
                c.review_crop_days,
                c.unknown_crop_days,
                c.decided_review_days,
                c.inactive_template_months
            ),
            (7, 7, 30, 36)
        );
    }
}
