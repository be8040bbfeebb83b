//! Gallery port (issue 3): where enrolled face templates live and how they are searched.
//!
//! A *template* is one L2-normalised face embedding of one student, with the metadata needed to
//! scope every search to one school (tenant) and, optionally, one campus. Adapters
//! (`rollcall-gallery`: embedded qdrant-edge, remote Qdrant server) implement [`Gallery`]; this
//! module only declares the contract and the plain data that crosses it. No I/O happens here.
//!
//! Contract every backend honours (checked by the conformance suite in `rollcall-gallery`):
//! * every search is scoped by a tenant: a template of school A is never returned to school B,
//!   even when both live in one shared collection;
//! * similarities are cosine similarities in `[-1, 1]`, best first;
//! * a vector whose length differs from [`Gallery::dim`] is refused with
//!   [`GalleryError::WrongVectorSize`], on upsert and on search;
//! * after [`Gallery::delete_student`] no search returns the student; after [`Gallery::purge`]
//!   the deleted templates are physically gone from storage (not only marked deleted).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::face::Embedding;
use crate::ids::{CampusId, StudentId, TenantId};

/// Identifier of one stored template: a UUID, kept as its 128-bit value so that the domain does
/// not depend on a UUID crate. Displays (and serialises) in the canonical hyphenated lowercase
/// form, e.g. `67e55044-10b1-426f-9247-bb680e5fe0c8`. Adapters create them (random v4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateId(u128);

impl TemplateId {
    pub const fn from_u128(v: u128) -> Self {
        Self(v)
    }
    pub const fn as_u128(&self) -> u128 {
        self.0
    }
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(b))
    }
    pub const fn to_bytes(&self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TemplateId({self})")
    }
}

/// Why a string is not a template id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID: {0:?}")]
pub struct TemplateIdError(pub String);

impl FromStr for TemplateId {
    type Err = TemplateIdError;
    /// Accepts the hyphenated form (8-4-4-4-12) or 32 bare hex digits, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TemplateIdError(s.to_string());
        let hex: String = if s.len() == 36 {
            let b = s.as_bytes();
            if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                return Err(bad());
            }
            s.chars().filter(|&c| c != '-').collect()
        } else {
            s.to_string()
        };
        if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        u128::from_str_radix(&hex, 16).map(Self).map_err(|_| bad())
    }
}

impl Serialize for TemplateId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TemplateId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The model that produced a vector. Vectors of different models are never compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    pub model_id: String,
    pub model_version: String,
}

impl ModelRef {
    pub fn of(e: &Embedding) -> Self {
        Self {
            model_id: e.model_id.clone(),
            model_version: e.model_version.clone(),
        }
    }
}

/// Everything stored next to a template's vector (the point payload in Qdrant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateMeta {
    pub template_id: TemplateId,
    pub student: StudentId,
    pub tenant: TenantId,
    /// Campuses where the student may check in. Empty means every campus of the tenant.
    pub campuses: Vec<CampusId>,
    pub model_id: String,
    pub model_version: String,
    /// `Quality::overall` of the face the template came from, in [0, 1].
    pub quality: f32,
    pub created_at: DateTime<Utc>,
}

impl TemplateMeta {
    pub fn model(&self) -> ModelRef {
        ModelRef {
            model_id: self.model_id.clone(),
            model_version: self.model_version.clone(),
        }
    }
}

/// One template: metadata plus the embedding vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub meta: TemplateMeta,
    pub vector: Vec<f32>,
}

/// One embedding to enroll, with the id the caller chose for it and its quality.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTemplate {
    pub template_id: TemplateId,
    pub embedding: Embedding,
    pub quality: f32,
}

impl Template {
    /// Builds the templates of one student from embeddings (what enrollment hands to
    /// [`Gallery::upsert`]). Every template gets the same tenant, campuses and `created_at`.
    pub fn for_student(
        tenant: &TenantId,
        student: &StudentId,
        campuses: &[CampusId],
        templates: Vec<NewTemplate>,
        created_at: DateTime<Utc>,
    ) -> Vec<Template> {
        templates
            .into_iter()
            .map(|t| Template {
                meta: TemplateMeta {
                    template_id: t.template_id,
                    student: student.clone(),
                    tenant: tenant.clone(),
                    campuses: campuses.to_vec(),
                    model_id: t.embedding.model_id,
                    model_version: t.embedding.model_version,
                    quality: t.quality,
                    created_at,
                },
                vector: t.embedding.vector,
            })
            .collect()
    }
}

/// A 1:N search. The tenant is mandatory; everything else narrows the search further.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub tenant: TenantId,
    /// Only students allowed at this campus (listed in `campuses`, or with an empty list).
    pub campus: Option<CampusId>,
    /// Only these students (e.g. the roster of the lesson in progress). `Some(vec![])` matches
    /// nobody.
    pub candidates: Option<Vec<StudentId>>,
    /// Only templates of this model. Callers should always set it in production so that a
    /// student enrolled with an older model is never scored with incompatible vectors.
    pub model: Option<ModelRef>,
    pub vector: Vec<f32>,
    /// Number of templates returned (a student may appear more than once; see
    /// [`best_per_student`]).
    pub top_k: usize,
}

impl SearchQuery {
    pub fn new(tenant: TenantId, vector: Vec<f32>, top_k: usize) -> Self {
        Self {
            tenant,
            campus: None,
            candidates: None,
            model: None,
            vector,
            top_k,
        }
    }
}

/// One template found by a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryHit {
    /// Cosine similarity to the probe, in [-1, 1].
    pub similarity: f32,
    pub meta: TemplateMeta,
}

/// A student ranked by its best template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentCandidate {
    pub student: StudentId,
    pub similarity: f32,
    pub template_id: TemplateId,
}

/// Collapses template hits into students (best template each), best first, at most `k`.
pub fn best_per_student(hits: &[GalleryHit], k: usize) -> Vec<StudentCandidate> {
    let mut best: BTreeMap<&StudentId, &GalleryHit> = BTreeMap::new();
    for h in hits {
        let e = best.entry(&h.meta.student).or_insert(h);
        if h.similarity > e.similarity {
            *e = h;
        }
    }
    let mut out: Vec<StudentCandidate> = best
        .into_values()
        .map(|h| StudentCandidate {
            student: h.meta.student.clone(),
            similarity: h.similarity,
            template_id: h.meta.template_id,
        })
        .collect();
    out.sort_by(|a, b| {
        b.similarity
            .total_cmp(&a.similarity)
            .then(a.student.cmp(&b.student))
    });
    out.truncate(k);
    out
}

/// What [`Gallery::count`] counts. `Default` counts everything in the gallery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CountScope {
    pub tenant: Option<TenantId>,
    /// Only meaningful together with a tenant (student ids are unique per school).
    pub student: Option<StudentId>,
}

impl CountScope {
    pub fn all() -> Self {
        Self::default()
    }
    pub fn tenant(t: &TenantId) -> Self {
        Self {
            tenant: Some(t.clone()),
            student: None,
        }
    }
    pub fn student(t: &TenantId, s: &StudentId) -> Self {
        Self {
            tenant: Some(t.clone()),
            student: Some(s.clone()),
        }
    }
}

/// Outcome of [`Gallery::purge`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Live templates after the purge.
    pub live_templates: u64,
    /// Bytes of storage before and after, where the backend can tell (embedded only).
    pub bytes_before: Option<u64>,
    pub bytes_after: Option<u64>,
    /// What the backend did, for the erasure receipt.
    pub method: String,
}

/// Outcome of [`Gallery::health`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GalleryHealth {
    /// "embedded" or "remote".
    pub backend: String,
    /// Where: a directory or a URL.
    pub location: String,
    pub dim: usize,
    pub templates: u64,
    /// Templates covered by an HNSW index (the rest are scanned exactly).
    pub indexed_templates: Option<u64>,
}

/// Everything that can go wrong in a gallery. Paths are named so an operator can act.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GalleryError {
    #[error("wrong vector size: the gallery holds {expected}-d vectors, got {got}")]
    WrongVectorSize { expected: usize, got: usize },
    #[error("vector contains NaN/infinite values or is all zeros")]
    InvalidVector,
    #[error("student {student} has no templates in tenant {tenant}")]
    UnknownStudent {
        tenant: TenantId,
        student: StudentId,
    },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("gallery unavailable at {location} after {attempts} attempt(s): {reason}")]
    Unavailable {
        location: String,
        attempts: u32,
        reason: String,
    },
    #[error("gallery at {location} timed out after {millis} ms")]
    Timeout { location: String, millis: u64 },
    #[error("gallery data directory {} is locked by another process ({reason})", path.display())]
    Locked { path: PathBuf, reason: String },
    #[error("gallery data directory {} is corrupt or unreadable: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("gallery storage error at {}: {reason}", path.display())]
    Storage { path: PathBuf, reason: String },
    #[error("gallery backend error: {0}")]
    Backend(String),
}

impl GalleryError {
    /// Worth retrying later (the backend may come back); the others are permanent.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GalleryError::Unavailable { .. } | GalleryError::Timeout { .. }
        )
    }
}

/// Checks a vector against the gallery dimension and for finite, non-zero values.
pub fn check_vector(dim: usize, v: &[f32]) -> Result<(), GalleryError> {
    if v.len() != dim {
        return Err(GalleryError::WrongVectorSize {
            expected: dim,
            got: v.len(),
        });
    }
    if v.iter().any(|x| !x.is_finite()) || v.iter().all(|&x| x == 0.0) {
        return Err(GalleryError::InvalidVector);
    }
    Ok(())
}

/// The gallery port.
#[async_trait]
pub trait Gallery: Send + Sync {
    /// Vector size this gallery stores.
    fn dim(&self) -> usize;

    /// Inserts or replaces templates (by template id). All vectors are checked first; nothing is
    /// written when one is refused. Returns the number written.
    async fn upsert(&self, templates: Vec<Template>) -> Result<usize, GalleryError>;

    /// Top-k templates most similar to the probe, best first, within the query's scope. An
    /// empty gallery (or scope) gives an empty list, not an error.
    async fn search(&self, query: &SearchQuery) -> Result<Vec<GalleryHit>, GalleryError>;

    /// Metadata of a student's templates (no vectors), any order.
    async fn student_templates(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<Vec<TemplateMeta>, GalleryError>;

    /// Every template of a tenant with its vector (calibration report, export).
    async fn tenant_templates(&self, tenant: &TenantId) -> Result<Vec<Template>, GalleryError>;

    /// One template by id, with its vector; `None` when absent (erasure proofs, tests).
    async fn get(&self, id: TemplateId) -> Result<Option<Template>, GalleryError>;

    /// Deletes all templates of a student; returns how many were deleted.
    /// [`GalleryError::UnknownStudent`] when the student has none. Deletion is logical until
    /// [`Gallery::purge`].
    async fn delete_student(
        &self,
        tenant: &TenantId,
        student: &StudentId,
    ) -> Result<usize, GalleryError>;

    /// Deletes some templates of a tenant by id (e.g. the worst when a student exceeds the
    /// template cap); returns how many existed and were deleted.
    async fn delete_templates(
        &self,
        tenant: &TenantId,
        ids: &[TemplateId],
    ) -> Result<usize, GalleryError>;

    /// Physically removes deleted templates from storage (and rebuilds indexes).
    async fn purge(&self) -> Result<PurgeReport, GalleryError>;

    async fn count(&self, scope: &CountScope) -> Result<u64, GalleryError>;

    async fn health(&self) -> Result<GalleryHealth, GalleryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_id_round_trips() {
        let id = TemplateId::from_u128(0x67e5504410b1426f9247bb680e5fe0c8);
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        assert_eq!(
            "67E55044-10B1-426F-9247-BB680E5FE0C8".parse::<TemplateId>(),
            Ok(id)
        );
        assert_eq!(
            "67e5504410b1426f9247bb680e5fe0c8".parse::<TemplateId>(),
            Ok(id)
        );
        assert!("67e55044-10b1-426f-9247-bb680e5fe0c"
            .parse::<TemplateId>()
            .is_err());
        assert!("67e55044+10b1-426f-9247-bb680e5fe0c8"
            .parse::<TemplateId>()
            .is_err());
        assert_eq!(TemplateId::from_bytes(id.to_bytes()), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"67e55044-10b1-426f-9247-bb680e5fe0c8\"");
        assert_eq!(serde_json::from_str::<TemplateId>(&json).unwrap(), id);
    }

    fn hit(student: &str, tid: u128, s: f32) -> GalleryHit {
        GalleryHit {
            similarity: s,
            meta: TemplateMeta {
                template_id: TemplateId::from_u128(tid),
                student: StudentId::new(student).unwrap(),
                tenant: TenantId::new("t").unwrap(),
                campuses: vec![],
                model_id: "m".into(),
                model_version: "1".into(),
                quality: 1.0,
                created_at: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            },
        }
    }

    #[test]
    fn best_per_student_keeps_best_template_and_ranks() {
        let hits = vec![
            hit("a", 1, 0.5),
            hit("b", 2, 0.7),
            hit("a", 3, 0.9),
            hit("c", 4, 0.1),
        ];
        let c = best_per_student(&hits, 2);
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].student.as_str(), c[0].template_id.as_u128()),
            ("a", 3)
        );
        assert_eq!(c[1].student.as_str(), "b");
    }

    #[test]
    fn check_vector_refuses_bad_input() {
        assert_eq!(
            check_vector(3, &[1.0, 0.0]),
            Err(GalleryError::WrongVectorSize {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            check_vector(2, &[f32::NAN, 1.0]),
            Err(GalleryError::InvalidVector)
        );
        assert_eq!(
            check_vector(2, &[0.0, 0.0]),
            Err(GalleryError::InvalidVector)
        );
        assert!(check_vector(2, &[0.6, 0.8]).is_ok());
    }

    #[test]
    fn locked_error_names_the_path() {
        let e = GalleryError::Locked {
            path: PathBuf::from("/data/gallery"),
            reason: "x".into(),
        };
        assert!(e.to_string().contains("/data/gallery"));
        assert!(!e.is_transient());
    }
}
