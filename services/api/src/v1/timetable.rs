//! Classes, class enrollments and lessons.

use super::{day_bounds, run, student_in_scope, DayQuery};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use rollcall_ledger::{NewClass, NewLesson};
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) async fn list_classes(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    let v: Vec<_> = st
        .store
        .classes()
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .collect();
    Ok(Json(json!({"classes": v})))
}

pub(super) async fn create_class(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(k): JsonBody<NewClass>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    staff.campus(&k.campus_id)?;
    run(&staff, st.store.create_class(&k)).await?;
    Ok((StatusCode::CREATED, Json(json!({"class": k}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Enroll {
    student_id: String,
}

async fn class_in_scope(st: &AppState, staff: &Staff, class: &str) -> ApiResult<()> {
    let campus = st
        .store
        .class_campus(class)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown class {class:?}")))?;
    staff.campus(&campus)
}

pub(super) async fn enroll(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<Enroll>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    class_in_scope(&st, &staff, &id).await?;
    // the child too: enrolling would add the class's campus to another campus's student
    student_in_scope(&st, &staff, &e.student_id).await?;
    run(&staff, st.store.enroll(&id, &e.student_id, Utc::now())).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"class_id": id, "student_id": e.student_id})),
    ))
}

pub(super) async fn list_lessons(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<DayQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(c) = &q.campus {
        staff.campus(c)?;
    }
    let (from, to) = day_bounds(&st, q.date.as_deref())?;
    let v: Vec<_> = st
        .store
        .lessons_between(from, to)
        .await?
        .into_iter()
        .filter(|l| staff.allows_campus(&l.campus_id))
        .filter(|l| q.campus.as_ref().is_none_or(|c| &l.campus_id == c))
        .collect();
    Ok(Json(json!({"from": from, "to": to, "lessons": v})))
}

pub(super) async fn add_lesson(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(l): JsonBody<NewLesson>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    class_in_scope(&st, &staff, &l.class_id).await?;
    if l.end <= l.start {
        return Err(ApiError::invalid("end must be after start"));
    }
    run(&staff, st.store.add_lesson(&l)).await?;
    Ok((StatusCode::CREATED, Json(json!({"lesson": l}))))
}
