//! Reports: attendance rates, the check-in heatmap, outstanding lessons.

use super::day_bounds;
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use rollcall_ledger::{AttendanceReport, HeatCell, OutstandingRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Check-ins by campus × weekday × hour over `from`..`to`.
#[derive(Serialize, ToSchema)]
pub(super) struct Heatmap {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[schema(value_type = Vec<crate::schema::HeatCell>)]
    cells: Vec<HeatCell>,
}

/// Lessons left and their value per student.
#[derive(Serialize, ToSchema)]
pub(super) struct Outstanding {
    #[schema(value_type = Vec<crate::schema::OutstandingRow>)]
    outstanding: Vec<OutstandingRow>,
}

#[derive(Deserialize)]
pub(super) struct Range {
    from: Option<String>,
    to: Option<String>,
}

fn range(st: &AppState, r: &Range) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let (today, _) = day_bounds(st, None)?;
    let from = match &r.from {
        Some(d) => day_bounds(st, Some(d))?.0,
        None => today - Duration::days(30),
    };
    let to = match &r.to {
        Some(d) => day_bounds(st, Some(d))?.1,
        None => today + Duration::days(1),
    };
    if to <= from || to - from > Duration::days(400) {
        return Err(ApiError::invalid(
            "from..to: up to 400 days, from before to",
        ));
    }
    Ok((from, to))
}

/// The report as JSON (the staff app's page reads it).
pub(crate) async fn attendance_report(
    st: &AppState,
    staff: &Staff,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Value> {
    let rep = attendance_typed(st, staff, from, to).await?;
    serde_json::to_value(rep).map_err(|e| ApiError::internal(e.to_string()))
}

async fn attendance_typed(
    st: &AppState,
    staff: &Staff,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<AttendanceReport> {
    let mut rep = st.store.report_attendance(from, to).await?;
    if !staff.is_all_campuses() {
        let classes = st.store.classes().await?;
        let students = st.store.students().await?;
        rep.per_class.retain(|r| {
            classes
                .iter()
                .any(|c| c.id == r.key && staff.allows_campus(&c.campus_id))
        });
        rep.per_student.retain(|r| {
            students
                .iter()
                .any(|s| s.id == r.key && s.campuses.iter().any(|c| staff.allows_campus(c)))
        });
    }
    Ok(rep)
}

pub(super) async fn report_attendance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(r): Query<Range>,
) -> ApiResult<Json<AttendanceReport>> {
    let (from, to) = range(&st, &r)?;
    Ok(Json(attendance_typed(&st, &staff, from, to).await?))
}

pub(crate) async fn heatmap(
    st: &AppState,
    staff: &Staff,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Vec<rollcall_ledger::HeatCell>> {
    Ok(st
        .store
        .report_heatmap(from, to)
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .collect())
}

pub(super) async fn report_heatmap(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(r): Query<Range>,
) -> ApiResult<Json<Heatmap>> {
    let (from, to) = range(&st, &r)?;
    Ok(Json(Heatmap {
        from,
        to,
        cells: heatmap(&st, &staff, from, to).await?,
    }))
}

pub(super) async fn report_outstanding(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Outstanding>> {
    let mut rows = st.store.report_outstanding(st.store.now()).await?;
    if !staff.is_all_campuses() {
        let students = st.store.students().await?;
        rows.retain(|r| {
            students
                .iter()
                .any(|s| s.id == r.student_id && s.campuses.iter().any(|c| staff.allows_campus(c)))
        });
    }
    Ok(Json(Outstanding { outstanding: rows }))
}
