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

use crate::students::{self as enroll, student_crops_dir, ErasureError, ErasureReceipt};
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
    Erase(Box<ErasureError>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl From<ErasureError> for PrivacyError {
    fn from(e: ErasureError) -> Self {
        PrivacyError::Erase(Box::new(e))
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

/// Where subject-access exports were written (`<exports>/<student>-<time>/`). The API now
/// streams an export instead of keeping it; what is still here (from earlier versions, or an
/// export interrupted half-way) is erased with the student and deleted by the retention job.
pub fn exports_dir(data: &Path) -> PathBuf {
    data.join("exports")
}

/// The export directories of one student under [`exports_dir`]: `<student>-<time>`, the
/// student id through [`enroll::path_component`] and the time as `YYYYMMDDTHHMMSS.mmmZ`
/// (an escaped id never ends in such a time: its `.` would be `%2E`, so no other student's
/// export matches).
fn student_exports(data: &Path, student: &StudentId) -> Result<Vec<PathBuf>, PrivacyError> {
    let dir = exports_dir(data);
    let prefix = format!("{}-", enroll::path_component(student.as_str()));
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(io(&dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        // `<student>-<YYYYMMDD>T…`: the part after the prefix starts with the date
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if is_export_time(rest) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// `YYYYMMDDTHHMMSS.mmmZ`.
fn is_export_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            8 => *c == b'T',
            15 => *c == b'.',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Deletes a file or a directory tree; `false` when it was not there.
fn remove_tree(path: &Path) -> Result<bool, PrivacyError> {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io(path)(e)),
    }
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
    /// Subject-access exports of the student left under the data directory (they hold the
    /// enrollment photos), deleted (paths relative to the data directory).
    #[serde(default)]
    pub exports_removed: Vec<String>,
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
    // not while an enrollment of the student runs in this process (it finishes, or stops at
    // its second consent check, first)
    let _serial = enroll::student_lock(tenant, student).await;
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
    // 4. Subject-access exports left on disk (copies of the enrollment photos).
    let mut exports_removed = Vec::new();
    for d in student_exports(data, student)? {
        if remove_tree(&d)? {
            exports_removed.push(d.strip_prefix(data).unwrap_or(&d).display().to_string());
        }
    }
    // 5. Deleted rows physically gone from the database files.
    let database_compaction = store.compact().await?;
    let sealed_templates_remaining = store.sealed(tenant, Some(student)).await?.len();
    let receipt = FullErasureReceipt {
        actor: actor.to_string(),
        reason,
        gallery: g,
        sealed_templates_removed,
        sealed_templates_remaining,
        review_images_removed: removed,
        exports_removed,
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
    /// Subject-access exports left under the data directory (default 1 day).
    #[serde(default = "default_export_days")]
    pub export_days: u32,
}

fn default_export_days() -> u32 {
    1
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            review_crop_days: 7,
            unknown_crop_days: 7,
            decided_review_days: 30,
            inactive_template_months: 36,
            export_days: default_export_days(),
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
            ("ROLLCALL_RETENTION_EXPORT_DAYS", &mut c.export_days),
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
    /// Subject-access exports past `export_days` (by their newest file).
    #[serde(default)]
    pub exports_removed: usize,
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
        exports_removed: 0,
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
    // Subject-access exports, by the age of their newest file.
    let export_cut = days(cfg.export_days);
    let edir = exports_dir(data);
    match std::fs::read_dir(&edir) {
        Ok(rd) => {
            for e in rd {
                let p = e.map_err(io(&edir))?.path();
                let files = if p.is_dir() {
                    files_under(&p)?
                } else {
                    vec![p.clone()]
                };
                let mut old = true;
                for f in &files {
                    old &= older_than(f, export_cut)?;
                }
                if old && remove_tree(&p)? {
                    report.exports_removed += 1;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&edir)(e)),
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

/// Subject-access export handed over whole (the API's download): [`export_student`] into
/// `<data>/exports/<student>-<time>/`, read back as one JSON document (`student`,
/// `biometric_data_held`, `record`: the export's JSON, `photos`: `[{name, jpeg_base64}]`), and
/// the directory removed again, also on failure. Only a crash in between leaves it, for the
/// student's erasure and the retention job ([`RetentionConfig::export_days`]).
pub async fn export_student_bundle(
    gallery: &dyn Gallery,
    store: &dyn PrivacyStore,
    data: &Path,
    tenant: &TenantId,
    student: &StudentId,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, PrivacyError> {
    let out = exports_dir(data).join(format!(
        "{}-{}",
        enroll::path_component(student.as_str()),
        now.format("%Y%m%dT%H%M%S%.3fZ")
    ));
    let r = export_student(gallery, store, data, tenant, student, &out, now).await;
    let bundle = r.and_then(|r| {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&r.json).map_err(io(&r.json))?)
                .map_err(|e| PrivacyError::Invalid(format!("export: {e}")))?;
        let mut photos = Vec::new();
        for p in &r.photos {
            let bytes = std::fs::read(p).map_err(io(p))?;
            photos.push(serde_json::json!({
                "name": p.file_name().map(|n| n.to_string_lossy().to_string()),
                "jpeg_base64": base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes
                ),
            }));
        }
        Ok(serde_json::json!({
            "student": r.student,
            "biometric_data_held": r.biometric_data_held,
            "record": record,
            "photos": photos,
        }))
    });
    remove_tree(&out)?;
    bundle
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
