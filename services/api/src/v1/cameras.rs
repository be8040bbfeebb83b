//! Cameras and their health.

use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A camera and its health (`online`, `offline`, `stale`, …; `unknown` when not running here).
#[derive(Serialize, ToSchema)]
pub(super) struct CameraState {
    id: String,
    campus_id: String,
    door: String,
    state: String,
}

/// Cameras of the caller's campuses.
#[derive(Serialize, ToSchema)]
pub(super) struct CameraList {
    cameras: Vec<CameraState>,
}

/// The cameras as JSON (the staff app's page reads it).
pub(crate) async fn cameras_json(st: &AppState, staff: &Staff) -> ApiResult<Value> {
    let c = camera_list(st, staff).await?;
    serde_json::to_value(c).map_err(|e| ApiError::internal(e.to_string()))
}

async fn camera_list(st: &AppState, staff: &Staff) -> ApiResult<CameraList> {
    let states = st.ops.camera_states();
    let v: Vec<_> = st
        .store
        .cameras()
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .map(|c| {
            let state = states
                .get(&c.id)
                .cloned()
                .unwrap_or_else(|| "unknown".into());
            CameraState {
                id: c.id,
                campus_id: c.campus_id,
                door: c.door,
                state,
            }
        })
        .collect();
    Ok(CameraList { cameras: v })
}

pub(super) async fn cameras(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<CameraList>> {
    Ok(Json(camera_list(&st, &staff).await?))
}
