//! Leave and make-up (issue 21 item 5): leave requests entered by staff for a guardian and
//! approved or refused by staff, make-ups linked to the missed lesson, the school's monthly
//! make-up number; and attendance corrections that fix the money (item 4).
//!
//! Campus checks: the student in the reader's reach and every lesson named at a campus of the
//! reader's; a teacher corrects only the lessons they teach (`lessons.teacher` is the account's
//! username).

use super::{run, student_in_scope};
use crate::auth::{roles, Staff};
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::{AttendanceStatus, Entry, Units};
use rollcall_ledger::{
    AttendanceCorrection, BalanceView, LeaveState, LeaveView, LessonBrief, LessonView,
    MakeupBooking, Role,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a leave request stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // documents LeaveState's wire form
pub(super) enum LeaveStateDoc {
    Pending,
    Approved,
    Refused,
}

/// A leave request with its lesson and, when booked, its make-up lesson.
#[derive(Serialize, ToSchema)]
pub(crate) struct LeaveOut {
    student_id: String,
    student_name: String,
    #[schema(value_type = crate::schema::LessonView)]
    lesson: LessonBrief,
    #[schema(value_type = LeaveStateDoc)]
    state: LeaveState,
    reason: Option<String>,
    requested_at: DateTime<Utc>,
    requested_by: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<DateTime<Utc>>,
    decision_note: Option<String>,
    makeup_lesson_id: Option<String>,
}

impl From<LeaveView> for LeaveOut {
    fn from(v: LeaveView) -> Self {
        LeaveOut {
            student_id: v.student_id,
            student_name: v.student_name,
            lesson: v.lesson,
            state: v.state,
            reason: v.reason,
            requested_at: v.requested_at,
            requested_by: v.requested_by,
            decided_by: v.decided_by,
            decided_at: v.decided_at,
            decision_note: v.decision_note,
            makeup_lesson_id: v.makeup_lesson_id,
        }
    }
}

/// Leave requests of the reader's campuses.
#[derive(Serialize, ToSchema)]
pub(super) struct LeaveList {
    leaves: Vec<LeaveOut>,
}

/// One leave request, as entered or decided.
#[derive(Serialize, ToSchema)]
pub(super) struct OneLeave {
    leave: LeaveOut,
}

#[derive(Deserialize)]
pub(super) struct LeaveQuery {
    state: Option<String>,
    student: Option<String>,
}

/// A leave state from a query or form: `pending`, `approved` or `refused`.
pub(crate) fn leave_state(s: &str) -> ApiResult<LeaveState> {
    LeaveState::parse(s).ok_or_else(|| {
        ApiError::invalid(format!(
            "state {s:?}: expected pending, approved or refused"
        ))
    })
}

/// The leave requests the reader's campuses reach (`state`, `student`: filters).
pub(crate) async fn leaves_for(
    st: &AppState,
    staff: &Staff,
    state: Option<LeaveState>,
    student: Option<&str>,
) -> ApiResult<Vec<LeaveView>> {
    Ok(st
        .store
        .leave_requests(state, student)
        .await?
        .into_iter()
        .filter(|l| staff.allows_campus(&l.lesson.campus_id))
        .collect())
}

pub(super) async fn list_leaves(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<LeaveQuery>,
) -> ApiResult<Json<LeaveList>> {
    let state = q.state.as_deref().map(leave_state).transpose()?;
    if let Some(s) = &q.student {
        student_in_scope(&st, &staff, s).await?;
    }
    let leaves = leaves_for(&st, &staff, state, q.student.as_deref()).await?;
    Ok(Json(LeaveList {
        leaves: leaves.into_iter().map(LeaveOut::from).collect(),
    }))
}

/// A guardian's leave request for one upcoming lesson, with the reason they gave.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnterLeave {
    pub(crate) lesson_id: String,
    pub(crate) reason: String,
}

/// Enters a leave request (pending): the student in reach, the lesson at a campus of the
/// reader's; a teacher, only for a lesson they teach.
pub(crate) async fn enter_leave_for(
    st: &AppState,
    staff: &Staff,
    student: &str,
    e: &EnterLeave,
) -> ApiResult<LeaveView> {
    staff.require(roles::DESK)?;
    student_in_scope(st, staff, student).await?;
    let l = lesson_named(st, "lesson_id", &e.lesson_id).await?;
    staff.campus(&l.campus_id)?;
    if !may_correct(staff, &l.teacher) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_teacher",
            format!(
                "a teacher enters leave only for the lessons they teach (lesson {} is {:?}'s)",
                e.lesson_id, l.teacher
            ),
        ));
    }
    Ok(run(
        staff,
        st.store.enter_leave(student, &e.lesson_id, &e.reason),
    )
    .await?)
}

pub(super) async fn enter_leave(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<EnterLeave>,
) -> ApiResult<(StatusCode, Json<OneLeave>)> {
    let v = enter_leave_for(&st, &staff, &id, &e).await?;
    Ok((StatusCode::CREATED, Json(OneLeave { leave: v.into() })))
}

/// Approve or refuse a pending leave request, with an optional note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecideLeave {
    /// `approve` or `refuse`.
    pub(crate) decision: String,
    pub(crate) note: Option<String>,
}

/// Decides a leave request: the student in reach, the lesson at a campus of the reader's.
pub(crate) async fn decide_leave_for(
    st: &AppState,
    staff: &Staff,
    student: &str,
    lesson: &str,
    d: &DecideLeave,
) -> ApiResult<LeaveView> {
    student_in_scope(st, staff, student).await?;
    let l = st.store.lesson(lesson).await?;
    staff.campus(&l.campus_id)?;
    let approve = match d.decision.as_str() {
        "approve" => true,
        "refuse" => false,
        other => {
            return Err(ApiError::invalid(format!(
                "decision {other:?}: expected approve or refuse"
            )))
        }
    };
    let note = d.note.as_deref().unwrap_or("");
    Ok(run(staff, st.store.decide_leave(student, lesson, approve, note)).await?)
}

pub(super) async fn decide_leave(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, lesson)): Path<(String, String)>,
    JsonBody(d): JsonBody<DecideLeave>,
) -> ApiResult<Json<OneLeave>> {
    let v = decide_leave_for(&st, &staff, &id, &lesson, &d).await?;
    Ok(Json(OneLeave { leave: v.into() }))
}

/// A make-up: the lesson missed and the lesson of another class to make it up in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookMakeup {
    pub(crate) missed_lesson_id: String,
    pub(crate) lesson_id: String,
}

/// A make-up booked, and the student's make-ups this month against the school's number.
#[derive(Serialize, ToSchema)]
pub(crate) struct MakeupBooked {
    student_id: String,
    missed_lesson_id: String,
    #[schema(value_type = crate::schema::LessonView)]
    lesson: LessonBrief,
    booked_at: DateTime<Utc>,
    makeups_this_month: i64,
    monthly_limit: i64,
    /// More make-ups this month than the school's number (the response and the staff app say
    /// so; the booking stands).
    over_limit: bool,
}

impl From<MakeupBooking> for MakeupBooked {
    fn from(m: MakeupBooking) -> Self {
        MakeupBooked {
            student_id: m.student_id,
            missed_lesson_id: m.missed_lesson_id,
            lesson: m.lesson,
            booked_at: m.booked_at,
            makeups_this_month: m.makeups_this_month,
            monthly_limit: m.monthly_limit,
            over_limit: m.over_limit,
        }
    }
}

/// A lesson a request names in `field`: unknown is the field's fault (422), not a missing page.
async fn lesson_named(st: &AppState, field: &str, id: &str) -> ApiResult<LessonView> {
    match st.store.lesson(id).await {
        Err(rollcall_ledger::LedgerError::NotFound { .. }) => Err(ApiError::invalid(format!(
            "{field}: there is no lesson {id:?}"
        ))),
        r => Ok(r?),
    }
}

/// Books a make-up: the student in reach, both lessons at campuses of the reader's.
pub(crate) async fn book_makeup_for(
    st: &AppState,
    staff: &Staff,
    student: &str,
    b: &BookMakeup,
) -> ApiResult<MakeupBooking> {
    student_in_scope(st, staff, student).await?;
    let missed = lesson_named(st, "missed_lesson_id", &b.missed_lesson_id).await?;
    staff.campus(&missed.campus_id)?;
    let l = lesson_named(st, "lesson_id", &b.lesson_id).await?;
    staff.campus(&l.campus_id)?;
    Ok(run(
        staff,
        st.store
            .book_makeup_for(student, &b.missed_lesson_id, &b.lesson_id),
    )
    .await?)
}

pub(super) async fn book_makeup(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<BookMakeup>,
) -> ApiResult<(StatusCode, Json<MakeupBooked>)> {
    let m = book_makeup_for(&st, &staff, &id, &b).await?;
    Ok((StatusCode::CREATED, Json(m.into())))
}

/// The school's number of make-ups a month past which a booking is flagged.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MakeupLimit {
    pub(crate) makeups_per_month: i64,
}

pub(super) async fn get_makeup_limit(State(st): State<AppState>) -> ApiResult<Json<MakeupLimit>> {
    Ok(Json(MakeupLimit {
        makeups_per_month: st.store.makeup_limit().await?,
    }))
}

/// Sets the monthly make-up number: a school-wide setting, for an account of every campus.
pub(crate) async fn set_makeup_limit_for(
    st: &AppState,
    staff: &Staff,
    limit: i64,
) -> ApiResult<i64> {
    super::require_all_campuses(staff)?;
    Ok(run(staff, st.store.set_makeup_limit(limit)).await?)
}

pub(super) async fn set_makeup_limit(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(m): JsonBody<MakeupLimit>,
) -> ApiResult<Json<MakeupLimit>> {
    let v = set_makeup_limit_for(&st, &staff, m.makeups_per_month).await?;
    Ok(Json(MakeupLimit {
        makeups_per_month: v,
    }))
}

/// The corrected status and why (required).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Correct {
    #[schema(value_type = crate::schema::AttendanceStatus)]
    pub(crate) status: AttendanceStatus,
    pub(crate) reason: String,
}

/// What a correction did to the attendance and the money, and the balance after it.
#[derive(Serialize, ToSchema)]
pub(super) struct Corrected {
    lesson_id: String,
    student_id: String,
    /// Null: nothing was recorded before.
    #[schema(value_type = Option<crate::schema::AttendanceStatus>)]
    before: Option<AttendanceStatus>,
    #[schema(value_type = crate::schema::AttendanceStatus)]
    after: AttendanceStatus,
    /// Hundredths of a lesson charged for the lesson before and after.
    charged_before: Units,
    charged_after: Units,
    #[schema(value_type = Vec<crate::schema::Entry>)]
    entries: Vec<Entry>,
    #[schema(value_type = crate::schema::BalanceView)]
    balance: BalanceView,
}

/// Corrects an attendance and its money: the lesson at a campus of the reader's, a teacher's
/// own lesson only.
pub(crate) async fn correct_for(
    st: &AppState,
    staff: &Staff,
    lesson: &str,
    student: &str,
    c: &Correct,
) -> ApiResult<AttendanceCorrection> {
    staff.require(roles::DESK)?;
    let l = st.store.lesson(lesson).await?;
    staff.campus(&l.campus_id)?;
    student_in_scope(st, staff, student).await?;
    if !may_correct(staff, &l.teacher) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_teacher",
            format!(
                "a teacher corrects only the lessons they teach (lesson {lesson} is {:?}'s)",
                l.teacher
            ),
        ));
    }
    let user = staff.account.username.clone();
    Ok(run(
        staff,
        st.store
            .correct_attendance(student, lesson, c.status, &c.reason, &user),
    )
    .await?)
}

/// Whether the reader may correct the lesson's attendance (by role: a teacher, their own
/// lessons; front desk, manager and admin, any lesson of their campuses).
pub(crate) fn may_correct(staff: &Staff, teacher: &str) -> bool {
    match staff.role() {
        Role::Teacher => teacher == staff.account.username,
        r => roles::DESK.contains(&r),
    }
}

pub(super) async fn correct(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((lesson, student)): Path<(String, String)>,
    JsonBody(c): JsonBody<Correct>,
) -> ApiResult<Json<Corrected>> {
    let r = correct_for(&st, &staff, &lesson, &student, &c).await?;
    Ok(Json(Corrected {
        lesson_id: r.lesson_id,
        student_id: r.student_id,
        before: r.before,
        after: r.after,
        charged_before: r.charged_before,
        charged_after: r.charged_after,
        entries: r.entries,
        balance: st.store.balance(&student, st.store.now()).await?,
    }))
}
