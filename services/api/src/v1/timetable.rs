//! Classes, class enrollments and lessons.

use super::{day_bounds, run, student_in_scope, DayQuery};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::DateTime;
use chrono::Utc;
use rollcall_ledger::{ClassView, LessonView, NewClass, NewLesson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Classes of the caller's campuses.
#[derive(Serialize, ToSchema)]
pub(super) struct ClassList {
    #[schema(value_type = Vec<crate::schema::ClassView>)]
    classes: Vec<ClassView>,
}

/// The class created.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedClass {
    #[schema(value_type = crate::schema::NewClass)]
    class: NewClass,
}

/// The enrollment made.
#[derive(Serialize, ToSchema)]
pub(super) struct Enrolled {
    class_id: String,
    student_id: String,
}

/// The lessons of a day (`from`..`to`: the day's bounds, school time).
#[derive(Serialize, ToSchema)]
pub(super) struct LessonList {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[schema(value_type = Vec<crate::schema::LessonView>)]
    lessons: Vec<LessonView>,
}

/// The lesson added.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedLesson {
    #[schema(value_type = crate::schema::NewLesson)]
    lesson: NewLesson,
}

pub(super) async fn list_classes(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<ClassList>> {
    let v: Vec<_> = st
        .store
        .classes()
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .collect();
    Ok(Json(ClassList { classes: v }))
}

pub(super) async fn create_class(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(k): JsonBody<NewClass>,
) -> ApiResult<(StatusCode, Json<CreatedClass>)> {
    staff.campus(&k.campus_id)?;
    run(&staff, st.store.create_class(&k)).await?;
    Ok((StatusCode::CREATED, Json(CreatedClass { class: k })))
}

/// The student to enroll.
#[derive(Deserialize, ToSchema)]
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
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    class_in_scope(&st, &staff, &id).await?;
    // the child too: enrolling would add the class's campus to another campus's student
    student_in_scope(&st, &staff, &e.student_id).await?;
    run(&staff, st.store.enroll(&id, &e.student_id, st.store.now())).await?;
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            class_id: id,
            student_id: e.student_id,
        }),
    ))
}

pub(super) async fn list_lessons(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<DayQuery>,
) -> ApiResult<Json<LessonList>> {
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
    Ok(Json(LessonList {
        from,
        to,
        lessons: v,
    }))
}

pub(super) async fn add_lesson(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(l): JsonBody<NewLesson>,
) -> ApiResult<(StatusCode, Json<CreatedLesson>)> {
    class_in_scope(&st, &staff, &l.class_id).await?;
    if l.end <= l.start {
        return Err(ApiError::invalid("end must be after start"));
    }
    run(&staff, st.store.add_lesson(&l)).await?;
    Ok((StatusCode::CREATED, Json(CreatedLesson { lesson: l })))
}
