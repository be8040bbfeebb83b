//! Attendance of lessons, corrections, the day's board and check-ins.

use super::{day_bounds, run, student_in_scope, DayQuery};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use rollcall_domain::ledger::{AttendanceSource, AttendanceStatus};
use rollcall_ledger::{BoardLesson, CheckIn, CheckInResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One lesson's attendance (null when the lesson is not on the board).
#[derive(Serialize, ToSchema)]
pub(super) struct LessonAttendance {
    #[schema(value_type = Option<crate::schema::BoardLesson>)]
    lesson: Option<BoardLesson>,
}

/// A corrected attendance status: before and after.
#[derive(Serialize, ToSchema)]
pub(super) struct AttendanceCorrected {
    lesson_id: String,
    student_id: String,
    #[schema(value_type = crate::schema::AttendanceStatus)]
    before: AttendanceStatus,
    #[schema(value_type = crate::schema::AttendanceStatus)]
    after: AttendanceStatus,
}

/// A day's board (`from`..`to`: the day's bounds, school time).
#[derive(Serialize, ToSchema)]
pub(crate) struct Board {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    #[schema(value_type = Vec<crate::schema::BoardLesson>)]
    lessons: Vec<BoardLesson>,
}

/// What the check-in did.
#[derive(Serialize, ToSchema)]
pub(super) struct CheckedIn {
    #[schema(value_type = crate::schema::CheckInResult)]
    check_in: CheckInResult,
}

pub(super) async fn lesson_attendance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<LessonAttendance>> {
    let l = st.store.lesson(&id).await?;
    staff.campus(&l.campus_id)?;
    let (from, to) = (l.start, l.start + Duration::milliseconds(1));
    let board = st.store.board(from, to).await?;
    let one = board.into_iter().find(|b| b.lesson.id == id);
    Ok(Json(LessonAttendance { lesson: one }))
}

/// The corrected status.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Mark {
    #[schema(value_type = crate::schema::AttendanceStatus)]
    status: AttendanceStatus,
}

pub(super) async fn mark(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, student)): Path<(String, String)>,
    JsonBody(m): JsonBody<Mark>,
) -> ApiResult<Json<AttendanceCorrected>> {
    let l = st.store.lesson(&id).await?;
    staff.campus(&l.campus_id)?;
    let user = staff.account.username.clone();
    let before = run(
        &staff,
        st.store
            .set_attendance_status(&student, &id, m.status, &user),
    )
    .await?;
    Ok(Json(AttendanceCorrected {
        lesson_id: id,
        student_id: student,
        before,
        after: m.status,
    }))
}

pub(super) async fn board(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<DayQuery>,
) -> ApiResult<Response> {
    // the same board for the same day, campus filter and campus scope (see crate::Caches)
    let key = format!(
        "{:?}|{:?}|{}",
        q.date,
        q.campus,
        serde_json::to_string(&staff.account.campuses).unwrap_or_default()
    );
    let hit = st
        .cache
        .board
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .filter(|(at, _)| at.elapsed() < crate::BOARD_TTL)
        .map(|(_, b)| b.clone());
    let bytes = match hit {
        Some(b) => b,
        None => {
            let v = board_typed(&st, &staff, &q.date, &q.campus).await?;
            let b = axum::body::Bytes::from(
                serde_json::to_vec(&v).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            let mut m = st.cache.board.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() > 1_000 {
                m.clear();
            }
            m.insert(key, (std::time::Instant::now(), b.clone()));
            b
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// The board as JSON (the staff app's page reads it).
pub(crate) async fn board_json(
    st: &AppState,
    staff: &Staff,
    date: &Option<String>,
    campus: &Option<String>,
) -> ApiResult<Value> {
    let b = board_typed(st, staff, date, campus).await?;
    serde_json::to_value(b).map_err(|e| ApiError::internal(e.to_string()))
}

async fn board_typed(
    st: &AppState,
    staff: &Staff,
    date: &Option<String>,
    campus: &Option<String>,
) -> ApiResult<Board> {
    if let Some(c) = campus {
        staff.campus(c)?;
    }
    let (from, to) = day_bounds(st, date.as_deref())?;
    let v: Vec<_> = st
        .store
        .board(from, to)
        .await?
        .into_iter()
        .filter(|l| staff.allows_campus(&l.lesson.campus_id))
        .filter(|l| campus.as_ref().is_none_or(|c| &l.lesson.campus_id == c))
        .collect();
    Ok(Board {
        from,
        to,
        lessons: v,
    })
}

/// A check-in: exactly one of `student_id` and `code`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Checkin {
    /// Student id (manual) — or `code` from a QR code / card (`rollcall:<student>`).
    student_id: Option<String>,
    code: Option<String>,
    at: Option<DateTime<Utc>>,
    /// Idempotency key of the event (e.g. the card reader's event id).
    event_key: Option<String>,
}

/// A check-in by hand (`Manual`) or by a scanned card (`Qr`), for the API and the staff app's
/// check-in page: the student must be in the caller's campuses; the time is now unless given
/// (at most 5 minutes ahead, at most a day back); the same exactly-once rules as the camera's.
pub(crate) async fn check_in_by_hand(
    st: &AppState,
    staff: &Staff,
    student: &str,
    source: AttendanceSource,
    at: Option<DateTime<Utc>>,
    event_key: Option<String>,
) -> ApiResult<CheckInResult> {
    student_in_scope(st, staff, student).await?;
    let now = st.store.now();
    let at = at.unwrap_or(now);
    // a check-in happened: at most a few minutes of clock skew ahead, at most a day back
    if at > now + Duration::minutes(5) {
        return Err(ApiError::invalid(
            "at: a check-in cannot be in the future (more than 5 minutes ahead)",
        ));
    }
    if now - at > Duration::hours(24) {
        return Err(ApiError::invalid("at: at most a day ago"));
    }
    let mut ci = CheckIn::new(student, at, source);
    ci.event_key = event_key.map(|k| format!("{}:{k}", source.as_str()));
    Ok(run(staff, st.store.check_in(&ci)).await?)
}

pub(super) async fn checkin(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(c): JsonBody<Checkin>,
) -> ApiResult<Json<CheckedIn>> {
    let (student, source) = match (&c.student_id, &c.code) {
        (Some(s), None) => (s.clone(), AttendanceSource::Manual),
        (None, Some(code)) => (
            code.strip_prefix("rollcall:")
                .ok_or_else(|| ApiError::invalid("code: expected rollcall:<student id>"))?
                .to_string(),
            AttendanceSource::Qr,
        ),
        _ => return Err(ApiError::invalid("give exactly one of student_id and code")),
    };
    let r = check_in_by_hand(&st, &staff, &student, source, c.at, c.event_key).await?;
    Ok(Json(CheckedIn { check_in: r }))
}
