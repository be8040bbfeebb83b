//! Alerts: listing (each with its data, its student's and class's names and its text in English
//! and Chinese), acknowledging and resolving.

use super::{parse_id, run, StateQuery};
use crate::alert_text::{alert_texts, AlertNames};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use rollcall_domain::ledger::AlertState;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Alerts of the caller's campuses.
#[derive(Serialize, ToSchema)]
pub(super) struct AlertList {
    alerts: Vec<AlertOut>,
}

/// An alert in words: English and Chinese, made from its kind, data and names.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertText {
    en: String,
    zh: String,
}

/// An alert as stored (`message`: the English text written when it was raised), with its data
/// (counts, dates, ids), the names of its student and class, and its text in both languages.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertOut {
    id: i64,
    #[schema(value_type = crate::schema::AlertKind)]
    kind: rollcall_domain::ledger::AlertKind,
    #[schema(value_type = crate::schema::AlertState)]
    state: AlertState,
    dedup_key: String,
    student_id: String,
    class_id: Option<String>,
    package_id: Option<String>,
    message: String,
    #[schema(value_type = crate::schema::AlertData)]
    data: rollcall_domain::ledger::AlertData,
    student_name: Option<String>,
    class_name: Option<String>,
    text: AlertText,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

/// An alert's state change.
#[derive(Serialize, ToSchema)]
pub(crate) struct AlertChanged {
    id: i64,
    #[schema(value_type = crate::schema::AlertState)]
    before: AlertState,
    #[schema(value_type = crate::schema::AlertState)]
    state: AlertState,
}

/// Campuses an alert concerns (class, camera, or the student's campuses).
async fn alert_campuses(st: &AppState, a: &rollcall_ledger::AlertView) -> ApiResult<Vec<String>> {
    if let Some(c) = &a.class_id {
        return Ok(st.store.class_campus(c).await?.into_iter().collect());
    }
    if a.student_id.is_empty() {
        // camera alerts: their camera's campus (data, else "camera {id}: …"); others (a
        // parked check-in) belong to no campus: school-wide accounts see them
        if a.kind != rollcall_domain::ledger::AlertKind::CameraOffline {
            return Ok(Vec::new());
        }
        let cams = st.store.cameras().await?;
        return Ok(cams
            .into_iter()
            .filter(|c| {
                a.data.camera_id.as_ref() == Some(&c.id)
                    || a.message.starts_with(&format!("camera {}:", c.id))
            })
            .map(|c| c.campus_id)
            .collect());
    }
    Ok(st.store.student_campuses(&a.student_id).await?)
}

pub(crate) async fn alerts_for(
    st: &AppState,
    staff: &Staff,
    state: Option<&str>,
) -> ApiResult<Vec<rollcall_ledger::AlertView>> {
    let state = match state {
        None => None,
        Some(s) => Some(AlertState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "state {s:?}: expected open, acknowledged or resolved"
            ))
        })?),
    };
    let mut out = Vec::new();
    for a in st.store.alerts(state).await? {
        if staff.is_all_campuses() || staff.any_campus(&alert_campuses(st, &a).await?).is_ok() {
            out.push(a);
        }
    }
    Ok(out)
}

pub(super) async fn list_alerts(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<StateQuery>,
) -> ApiResult<Json<AlertList>> {
    let names = AlertNames::load(&st).await?;
    let off = st.store.tz_offset_minutes();
    let alerts = alerts_for(&st, &staff, q.state.as_deref())
        .await?
        .into_iter()
        .map(|a| {
            let t = alert_texts(&a, &names, off);
            let student = if a.student_id.is_empty() {
                a.data.student_id.clone()
            } else {
                Some(a.student_id.clone())
            };
            AlertOut {
                student_name: student.and_then(|s| names.students.get(&s).cloned()),
                class_name: a
                    .class_id
                    .as_ref()
                    .and_then(|c| names.classes.get(c).cloned()),
                text: AlertText { en: t.en, zh: t.zh },
                id: a.id,
                kind: a.kind,
                state: a.state,
                dedup_key: a.dedup_key,
                student_id: a.student_id,
                class_id: a.class_id,
                package_id: a.package_id,
                message: a.message,
                data: a.data,
                created_at: a.created_at,
                updated_at: a.updated_at,
            }
        })
        .collect();
    Ok(Json(AlertList { alerts }))
}

/// The change as JSON (the staff app's page calls it).
pub(crate) async fn set_alert(
    st: &AppState,
    staff: &Staff,
    id: &str,
    to: AlertState,
) -> ApiResult<Value> {
    let c = set_alert_typed(st, staff, id, to).await?;
    serde_json::to_value(c).map_err(|e| ApiError::internal(e.to_string()))
}

async fn set_alert_typed(
    st: &AppState,
    staff: &Staff,
    id: &str,
    to: AlertState,
) -> ApiResult<AlertChanged> {
    let id = parse_id(id)?;
    let a = st
        .store
        .alerts(None)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::not_found(format!("unknown alert {id}")))?;
    staff.any_campus(&alert_campuses(st, &a).await?)?;
    if a.state == AlertState::Resolved {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("alert {id} is already resolved"),
        ));
    }
    let user = staff.account.username.clone();
    run(staff, st.store.set_alert_state(id, to, &user)).await?;
    Ok(AlertChanged {
        id,
        before: a.state,
        state: to,
    })
}

pub(super) async fn ack_alert(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertChanged>> {
    Ok(Json(
        set_alert_typed(&st, &staff, &id, AlertState::Acknowledged).await?,
    ))
}

pub(super) async fn resolve_alert(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertChanged>> {
    Ok(Json(
        set_alert_typed(&st, &staff, &id, AlertState::Resolved).await?,
    ))
}
