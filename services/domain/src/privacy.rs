//! Privacy ports and rules (issue 9): guardian consent for face recognition, and the opaque
//! rows of the encrypted canonical template store.
//!
//! * [`consent_status`] is the one rule deciding whether a student may have biometric data:
//!   the newest consent decision of the purpose must be a grant, from a guardian, with a
//!   document reference, not expired at `now`. A withdrawal (a decision with `granted = false`)
//!   or an expiry ends it.
//! * [`ConsentProof`] can only be made by [`ConsentProof::check`], which asks a
//!   [`ConsentGate`] for the student's consent history and applies the rule. Enrollment takes a
//!   gate and checks it itself, so no caller (CLI, API, bulk import) can enroll without it.
//! * [`PrivacyStore`] is what the ledger offers the gallery's privacy code without either
//!   knowing the other: consent history, sealed (encrypted) template rows as plain bytes,
//!   students' last activity, audit rows and the subject-access record.
//!
//! No I/O happens here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::gallery::TemplateId;
use crate::ids::{StudentId, TenantId};

/// The consent purpose that allows face templates (the `kind` of a consent record).
pub const FACE_CONSENT: &str = "face_recognition";

/// One consent decision, as recorded (append-only; the newest one counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The purpose (scope) consented to, e.g. [`FACE_CONSENT`].
    pub kind: String,
    /// `true` for a grant, `false` for a refusal or a withdrawal.
    pub granted: bool,
    /// Who decided: the guardian's id (or the staff member who recorded a withdrawal).
    pub given_by: String,
    /// When the decision was made.
    pub at: DateTime<Utc>,
    /// Reference of the signed document (paper form number, e-signature id).
    pub document_ref: Option<String>,
    /// When a grant ends by itself; `None` = until withdrawn.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Whether a student may have biometric data now, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ConsentStatus {
    Valid {
        record: ConsentRecord,
    },
    /// No decision of this purpose was ever recorded.
    Missing,
    /// The newest decision is a refusal or withdrawal.
    Withdrawn {
        at: DateTime<Utc>,
        by: String,
    },
    /// The newest grant expired.
    Expired {
        expired_at: DateTime<Utc>,
    },
    /// The newest grant lacks the guardian or the document reference.
    Incomplete {
        reason: String,
    },
}

impl ConsentStatus {
    pub fn is_valid(&self) -> bool {
        matches!(self, ConsentStatus::Valid { .. })
    }
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ConsentStatus::Valid { .. } => "valid",
            ConsentStatus::Missing => "consent_missing",
            ConsentStatus::Withdrawn { .. } => "consent_withdrawn",
            ConsentStatus::Expired { .. } => "consent_expired",
            ConsentStatus::Incomplete { .. } => "consent_incomplete",
        }
    }
}

/// The consent rule: the newest decision of `kind` made at or before `now` (ties: the later in
/// `records`, which are in recording order) decides.
pub fn consent_status(records: &[ConsentRecord], kind: &str, now: DateTime<Utc>) -> ConsentStatus {
    let newest = records
        .iter()
        .filter(|r| r.kind == kind && r.at <= now)
        .fold(None::<&ConsentRecord>, |best, r| match best {
            Some(b) if b.at > r.at => Some(b),
            _ => Some(r),
        });
    let Some(r) = newest else {
        return ConsentStatus::Missing;
    };
    if !r.granted {
        return ConsentStatus::Withdrawn {
            at: r.at,
            by: r.given_by.clone(),
        };
    }
    if let Some(e) = r.expires_at {
        if e <= now {
            return ConsentStatus::Expired { expired_at: e };
        }
    }
    if r.given_by.trim().is_empty() {
        return ConsentStatus::Incomplete {
            reason: "no guardian named".into(),
        };
    }
    if r.document_ref
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .is_empty()
    {
        return ConsentStatus::Incomplete {
            reason: "no document reference".into(),
        };
    }
    ConsentStatus::Valid { record: r.clone() }
}

/// A failure of a privacy store (the database behind it), as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("privacy store: {0}")]
pub struct PrivacyStoreError(pub String);

/// Why consent does not allow biometric data for a student.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConsentError {
    #[error("student {student} of {tenant} has no valid face-recognition consent ({}): {}", .status.code(), describe(.status))]
    Refused {
        tenant: TenantId,
        student: StudentId,
        status: ConsentStatus,
    },
    #[error(transparent)]
    Store(#[from] PrivacyStoreError),
}

fn describe(s: &ConsentStatus) -> String {
    match s {
        ConsentStatus::Valid { .. } => "valid".into(),
        ConsentStatus::Missing => "no guardian consent recorded".into(),
        ConsentStatus::Withdrawn { at, by } => format!("withdrawn by {by} at {at}"),
        ConsentStatus::Expired { expired_at } => format!("expired at {expired_at}"),
        ConsentStatus::Incomplete { reason } => reason.clone(),
    }
}

/// Where consent decisions are kept.
#[async_trait]
pub trait ConsentGate: Send + Sync {
    /// Every consent decision of the student (any purpose), in recording order. A student the
    /// store does not know has none.
    async fn consent_history(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<Vec<ConsentRecord>, PrivacyStoreError>;
}

/// Proof that a student had valid face-recognition consent at `checked_at`. Only
/// [`ConsentProof::check`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentProof {
    tenant: TenantId,
    student: StudentId,
    record: ConsentRecord,
    checked_at: DateTime<Utc>,
}

impl ConsentProof {
    /// Asks the gate and applies [`consent_status`] for [`FACE_CONSENT`] at `now`.
    pub async fn check(
        gate: &dyn ConsentGate,
        tenant: &TenantId,
        student: &StudentId,
        now: DateTime<Utc>,
    ) -> Result<ConsentProof, ConsentError> {
        let history = gate.consent_history(tenant, student).await?;
        match consent_status(&history, FACE_CONSENT, now) {
            ConsentStatus::Valid { record } => Ok(ConsentProof {
                tenant: tenant.clone(),
                student: student.clone(),
                record,
                checked_at: now,
            }),
            status => Err(ConsentError::Refused {
                tenant: tenant.clone(),
                student: student.clone(),
                status,
            }),
        }
    }
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    pub fn student(&self) -> &StudentId {
        &self.student
    }
    pub fn record(&self) -> &ConsentRecord {
        &self.record
    }
    pub fn checked_at(&self) -> DateTime<Utc> {
        self.checked_at
    }
}

/// One encrypted canonical template, as the database keeps it: ids in clear (for deletion and
/// listing), the template itself only as AES-256-GCM ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedTemplate {
    pub tenant: TenantId,
    pub student: StudentId,
    pub template_id: TemplateId,
    pub model_id: String,
    pub model_version: String,
    /// Id of the key that sealed it (keys themselves never reach the database).
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// A face image the ledger points at (a review item's crop, a hard negative's crop): where it
/// is, relative to the data directory, and whom it may show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    pub path: String,
    pub created_at: DateTime<Utc>,
    /// When the item it belongs to was decided; `None` while pending.
    pub decided_at: Option<DateTime<Utc>>,
    /// Students it may show (candidates, the decided student, a hard negative's student).
    pub students: Vec<String>,
}

/// The ledger's side of privacy, as plain rows.
#[async_trait]
pub trait PrivacyStore: ConsentGate {
    /// Appends a consent decision (a withdrawal is `granted = false`); the student must exist.
    async fn append_consent(
        &self,
        tenant: &TenantId,
        student: &StudentId,
        record: &ConsentRecord,
    ) -> Result<(), PrivacyStoreError>;

    /// Inserts or replaces (by template id) sealed templates, all or nothing.
    async fn put_sealed(&self, rows: &[SealedTemplate]) -> Result<(), PrivacyStoreError>;

    /// Sealed templates of a tenant, or of one student.
    async fn sealed(
        &self,
        tenant: &TenantId,
        student: Option<&StudentId>,
    ) -> Result<Vec<SealedTemplate>, PrivacyStoreError>;

    /// Deletes a student's sealed templates; returns how many.
    async fn delete_sealed_student(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<usize, PrivacyStoreError>;

    /// Deletes sealed templates by id within a tenant; returns how many.
    async fn delete_sealed_ids(
        &self,
        tenant: &TenantId,
        ids: &[TemplateId],
    ) -> Result<usize, PrivacyStoreError>;

    /// Rewrites storage so that deleted rows are physically gone (SQLite: checkpoint the WAL
    /// and VACUUM; PostgreSQL: nothing to do from here, see PRIVACY.md). Returns what it did.
    async fn compact(&self) -> Result<String, PrivacyStoreError>;

    /// For every student of the tenant, the latest of: registration, attendance, consent.
    async fn last_activity(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(StudentId, DateTime<Utc>)>, PrivacyStoreError>;

    /// Writes an audit row (`action` e.g. `biometric_erasure`, `detail` a JSON document).
    async fn audit_privacy(
        &self,
        tenant: &TenantId,
        actor: &str,
        action: &str,
        student: &StudentId,
        detail: &str,
        at: DateTime<Utc>,
    ) -> Result<(), PrivacyStoreError>;

    /// Face images referenced by the ledger (review queue crops, hard negatives).
    async fn stored_images(&self, tenant: &TenantId)
        -> Result<Vec<StoredImage>, PrivacyStoreError>;

    /// Clears the references to images that were deleted; returns how many rows changed.
    async fn forget_images(
        &self,
        tenant: &TenantId,
        paths: &[String],
    ) -> Result<usize, PrivacyStoreError>;

    /// Everything the ledger holds about a student, as a JSON document (subject access).
    async fn subject_record(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<String, PrivacyStoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, d, 12, 0, 0).unwrap()
    }

    fn grant(at: DateTime<Utc>, exp: Option<DateTime<Utc>>) -> ConsentRecord {
        ConsentRecord {
            kind: FACE_CONSENT.into(),
            granted: true,
            given_by: "g1".into(),
            at,
            document_ref: Some("form-17".into()),
            expires_at: exp,
        }
    }

    #[test]
    fn newest_decision_counts() {
        assert_eq!(
            consent_status(&[], FACE_CONSENT, t(5)),
            ConsentStatus::Missing
        );
        let g = grant(t(1), Some(t(20)));
        assert!(consent_status(std::slice::from_ref(&g), FACE_CONSENT, t(5)).is_valid());
        // not yet valid before it was given
        assert_eq!(
            consent_status(
                std::slice::from_ref(&g),
                FACE_CONSENT,
                t(1) - chrono::Duration::hours(1)
            ),
            ConsentStatus::Missing
        );
        // expired
        assert_eq!(
            consent_status(std::slice::from_ref(&g), FACE_CONSENT, t(20)),
            ConsentStatus::Expired { expired_at: t(20) }
        );
        // withdrawn later
        let mut w = g.clone();
        w.granted = false;
        w.at = t(3);
        w.given_by = "g1".into();
        let s = consent_status(&[g.clone(), w.clone()], FACE_CONSENT, t(5));
        assert_eq!(s.code(), "consent_withdrawn");
        // the withdrawal is in the future: still valid now
        assert!(consent_status(&[g.clone(), w.clone()], FACE_CONSENT, t(2)).is_valid());
        // granted again after the withdrawal
        let again = grant(t(4), None);
        assert!(consent_status(&[g.clone(), w, again], FACE_CONSENT, t(5)).is_valid());
        // another purpose does not count
        let mut other = g.clone();
        other.kind = "photos_on_website".into();
        assert_eq!(
            consent_status(&[other], FACE_CONSENT, t(5)),
            ConsentStatus::Missing
        );
    }

    #[test]
    fn grants_need_a_guardian_and_a_document() {
        let mut g = grant(t(1), None);
        g.document_ref = Some("  ".into());
        assert_eq!(
            consent_status(std::slice::from_ref(&g), FACE_CONSENT, t(2)).code(),
            "consent_incomplete"
        );
        g.document_ref = Some("form".into());
        g.given_by = String::new();
        assert_eq!(
            consent_status(&[g], FACE_CONSENT, t(2)).code(),
            "consent_incomplete"
        );
    }

    #[test]
    fn same_instant_later_record_wins() {
        let g = grant(t(1), None);
        let mut w = g.clone();
        w.granted = false;
        assert_eq!(
            consent_status(&[g.clone(), w.clone()], FACE_CONSENT, t(2)).code(),
            "consent_withdrawn"
        );
        assert!(consent_status(&[w, g], FACE_CONSENT, t(2)).is_valid());
    }
}
