//! Reports: attendance rates, the check-in heatmap, outstanding lessons.

use super::day_bounds;
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

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

pub(crate) async fn attendance_report(
    st: &AppState,
    staff: &Staff,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> ApiResult<Value> {
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
    Ok(json!(rep))
}

pub(super) async fn report_attendance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(r): Query<Range>,
) -> ApiResult<Json<Value>> {
    let (from, to) = range(&st, &r)?;
    Ok(Json(attendance_report(&st, &staff, from, to).await?))
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
) -> ApiResult<Json<Value>> {
    let (from, to) = range(&st, &r)?;
    Ok(Json(
        json!({"from": from, "to": to, "cells": heatmap(&st, &staff, from, to).await?}),
    ))
}

pub(super) async fn report_outstanding(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
) -> ApiResult<Json<Value>> {
    let mut rows = st.store.report_outstanding(Utc::now()).await?;
    if !staff.is_all_campuses() {
        let students = st.store.students().await?;
        rows.retain(|r| {
            students
                .iter()
                .any(|s| s.id == r.student_id && s.campuses.iter().any(|c| staff.allows_campus(c)))
        });
    }
    Ok(Json(json!({"outstanding": rows})))
}
