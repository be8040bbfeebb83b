//! Data-subject rights: biometric erasure, subject-access export and consent withdrawal.

use super::{run, student_in_scope};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The receipt of a biometric erasure.
#[derive(Serialize, ToSchema)]
pub(super) struct Erased {
    receipt: Value,
}

/// Everything held about a student: the JSON record and the enrollment photos (base64).
#[derive(Serialize, ToSchema)]
pub(super) struct SubjectExport {
    export: Value,
}

pub(super) async fn erase(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Erased>> {
    student_in_scope(&st, &staff, &id).await?;
    let receipt = run(&staff, st.ops.erase(&id)).await?;
    Ok(Json(Erased { receipt }))
}

pub(super) async fn export_subject(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    student_in_scope(&st, &staff, &id).await?;
    let bundle = run(&staff, st.ops.export(&id)).await?;
    let body = serde_json::to_vec(&SubjectExport { export: bundle })
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-export.json\"",
                    rollcall_domain::ids::path_component(&id)
                ),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// Who withdrew consent, and the signed form's reference.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Withdrawal {
    /// Guardian (or staff member) who withdrew.
    pub by: String,
    pub document_ref: Option<String>,
}

pub(super) async fn withdraw_consent(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(w): JsonBody<Withdrawal>,
) -> ApiResult<Json<Erased>> {
    if w.by.trim().is_empty() {
        return Err(ApiError::invalid("`by` must name who withdrew consent"));
    }
    student_in_scope(&st, &staff, &id).await?;
    let receipt = run(&staff, st.ops.withdraw_consent(&id, &w.by, w.document_ref)).await?;
    Ok(Json(Erased { receipt }))
}
