//! A student's templates as a whole: the per-student lock that serialises enrollment and
//! erasure, the crops directory, erasure with its receipt, and the students needing
//! re-enrollment after a model change.
//!
//! Enrollment itself (photo → face pipeline → sealed template → index) lives above this crate,
//! in `rollcall_runtime::enrollment`: the gallery knows templates and vectors, never images or
//! models.

use crate::{Gallery, GalleryError, TemplateId};
use chrono::{DateTime, Utc};
use rollcall_domain::gallery::ModelRef;
use rollcall_domain::{StudentId, TenantId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why an erasure could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    #[error("cannot remove {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ErasureError + '_ {
    move |source| ErasureError::Io {
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
) -> Result<ErasureReceipt, ErasureError> {
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
}
