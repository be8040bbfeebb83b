//! The review queue of uncertain recognitions.

use super::{jpeg, parse_id, run, student_in_scope, StateQuery};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::{Extension, Json};
use rollcall_ledger::{ReviewDecision, ReviewItem, ReviewOutcome, ReviewState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Review items, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct ReviewList {
    #[schema(value_type = Vec<crate::schema::ReviewItem>)]
    items: Vec<ReviewItem>,
}

/// One review item.
#[derive(Serialize, ToSchema)]
pub(super) struct OneReviewItem {
    #[schema(value_type = crate::schema::ReviewItem)]
    item: ReviewItem,
}

pub(crate) async fn review_list(
    st: &AppState,
    staff: &Staff,
    state: Option<&str>,
    limit: i64,
) -> ApiResult<Vec<rollcall_ledger::ReviewItem>> {
    let state = match state {
        None => None,
        Some(s) => Some(ReviewState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "state {s:?}: expected pending, approved, rejected or reassigned"
            ))
        })?),
    };
    let mut items: Vec<_> = st
        .store
        .review_items(state, limit.clamp(1, 500))
        .await?
        .into_iter()
        .filter(|i| staff.allows_campus(&i.campus_id))
        .collect();
    scope_candidates(st, staff, &mut items).await?;
    Ok(items)
}

/// For an account limited to campuses: drops the candidates (students, with their scores) who
/// belong to none of its campuses, so a review item never names another campus's child.
pub(crate) async fn scope_candidates(
    st: &AppState,
    staff: &Staff,
    items: &mut [rollcall_ledger::ReviewItem],
) -> ApiResult<()> {
    if staff.is_all_campuses() || items.iter().all(|i| i.candidates.is_empty()) {
        return Ok(());
    }
    let students = st.store.students().await?;
    let visible = |id: &str| {
        students
            .iter()
            .any(|s| s.id == id && s.campuses.iter().any(|c| staff.allows_campus(c)))
    };
    for i in items.iter_mut() {
        i.candidates.retain(|c| visible(&c.student_id));
    }
    Ok(())
}

pub(super) async fn list_review(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<ReviewList>> {
    let v = review_list(&st, &staff, q.state.as_deref(), q.limit.unwrap_or(100)).await?;
    Ok(Json(ReviewList { items: v }))
}

async fn review_in_scope(
    st: &AppState,
    staff: &Staff,
    id: &str,
) -> ApiResult<rollcall_ledger::ReviewItem> {
    let item = st.store.review_item(parse_id(id)?).await?;
    staff.campus(&item.campus_id)?;
    let mut one = [item];
    scope_candidates(st, staff, &mut one).await?;
    let [item] = one;
    Ok(item)
}

pub(super) async fn get_review(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<OneReviewItem>> {
    Ok(Json(OneReviewItem {
        item: review_in_scope(&st, &staff, &id).await?,
    }))
}

pub(super) async fn review_crop(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let item = review_in_scope(&st, &staff, &id).await?;
    let rel = item
        .crop_path
        .ok_or_else(|| ApiError::not_found("this item has no crop"))?;
    // stored paths are relative to the data directory and must stay under crops/review
    let rel_path = std::path::Path::new(&rel);
    let ok = rel_path.starts_with("crops/review")
        && rel_path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !ok {
        return Err(ApiError::not_found("crop path is not under crops/review"));
    }
    let bytes = tokio::fs::read(st.config.data_dir.join(rel_path))
        .await
        .map_err(|_| ApiError::not_found("the crop was deleted (retention) or is missing"))?;
    Ok(jpeg(bytes))
}

/// A reviewer's decision (`student_id`: the student for `reassign`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decide {
    #[schema(value_type = crate::schema::ReviewDecision)]
    pub decision: ReviewDecision,
    pub student_id: Option<String>,
}

/// The decision as JSON (the staff app's page reads it).
pub(crate) async fn decide_review(
    st: &AppState,
    staff: &Staff,
    id: &str,
    d: &Decide,
) -> ApiResult<Value> {
    let out = decide_typed(st, staff, id, d).await?;
    serde_json::to_value(out).map_err(|e| ApiError::internal(e.to_string()))
}

async fn decide_typed(
    st: &AppState,
    staff: &Staff,
    id: &str,
    d: &Decide,
) -> ApiResult<ReviewOutcome> {
    let item = review_in_scope(st, staff, id).await?;
    if let Some(s) = &d.student_id {
        if d.decision == ReviewDecision::Reassign {
            student_in_scope(st, staff, s).await?;
        }
    }
    let user = staff.account.username.clone();
    let out = run(
        staff,
        st.store
            .decide_review(item.id, d.decision, d.student_id.as_deref(), &user),
    )
    .await?;
    Ok(out)
}

pub(super) async fn decide(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<Decide>,
) -> ApiResult<Json<ReviewOutcome>> {
    Ok(Json(decide_typed(&st, &staff, &id, &d).await?))
}
