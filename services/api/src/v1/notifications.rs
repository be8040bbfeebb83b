//! The notification outbox.

use super::{require_all_campuses, StateQuery};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use rollcall_ledger::{OutboxCounts, OutboxRow};
use serde::Serialize;
use utoipa::ToSchema;

/// The outbox: counts per state and the newest notifications.
#[derive(Serialize, ToSchema)]
pub(super) struct Notifications {
    #[schema(value_type = crate::schema::OutboxCounts)]
    counts: OutboxCounts,
    #[schema(value_type = Vec<crate::schema::OutboxRow>)]
    notifications: Vec<OutboxRow>,
}

pub(super) async fn list_notifications(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<Notifications>> {
    // the outbox holds guardians' addresses of every campus
    require_all_campuses(&staff)?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(rollcall_ledger::OutboxState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!("state {s:?}: expected pending, sent or dead"))
        })?),
    };
    let now = st.store.now();
    let counts = st.store.outbox_counts(now).await?;
    let rows = st
        .store
        .outbox(state, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    Ok(Json(Notifications {
        counts,
        notifications: rows,
    }))
}
