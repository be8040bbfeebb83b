//! Cameras and their health.

use crate::auth::Staff;
use crate::error::ApiResult;
use crate::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};

pub(crate) async fn cameras_json(st: &AppState, staff: &Staff) -> ApiResult<Value> {
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
            json!({"id": c.id, "campus_id": c.campus_id, "door": c.door, "state": state})
        })
        .collect();
    Ok(json!({"cameras": v}))
}

pub(super) async fn cameras(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    Ok(Json(cameras_json(&st, &staff).await?))
}
