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
    /// Lessons of the day that were cancelled (with why and who was booked).
    #[schema(value_type = Vec<crate::schema::CancelledLessonView>)]
    cancelled: Vec<rollcall_ledger::CancelledLessonView>,
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

pub(crate) async fn create_class_for(st: &AppState, staff: &Staff, k: &NewClass) -> ApiResult<()> {
    staff.campus(&k.campus_id)?;
    Ok(run(staff, st.store.create_class(k)).await?)
}

pub(super) async fn create_class(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(k): JsonBody<NewClass>,
) -> ApiResult<(StatusCode, Json<CreatedClass>)> {
    create_class_for(&st, &staff, &k).await?;
    Ok((StatusCode::CREATED, Json(CreatedClass { class: k })))
}

/// The student to enroll.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Enroll {
    student_id: String,
}

pub(crate) async fn class_in_scope(st: &AppState, staff: &Staff, class: &str) -> ApiResult<()> {
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
    let cancelled = st
        .store
        .cancelled_lessons(from, to)
        .await?
        .into_iter()
        .filter(|l| staff.allows_campus(&l.campus_id))
        .filter(|l| q.campus.as_ref().is_none_or(|c| &l.campus_id == c))
        .collect();
    Ok(Json(LessonList {
        from,
        to,
        lessons: v,
        cancelled,
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

// ---- editing the timetable (issue 21 item 6) ----
//
// Each `…_for` function is what both the JSON route and the staff app's form call: the role is
// checked by the route table (and by the page before it shows a form), the campus here, the
// rules and the audit row in the ledger.

/// A class's settings, all of them (the request body of `editClass`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditClass {
    pub(crate) name: String,
    /// The class's teacher (a staff username); lessons not started yet that had the old
    /// teacher get the new one.
    pub(crate) teacher: String,
    /// The usual room (a room of the class's campus); lessons not started yet follow it.
    #[serde(default)]
    pub(crate) room_id: Option<String>,
    /// The most students enrolled; absent: no limit (a 1-on-1 class: 1).
    #[serde(default)]
    pub(crate) capacity: Option<i64>,
    #[schema(value_type = crate::schema::ClassPolicy)]
    pub(crate) policy: rollcall_domain::ledger::ClassPolicy,
}

/// What an edit changed.
#[derive(Serialize, ToSchema)]
pub(super) struct ClassEdited {
    class_id: String,
    /// Lessons not started yet whose teacher or room followed the class.
    lessons_updated: usize,
}

pub(crate) async fn edit_class_for(
    st: &AppState,
    staff: &Staff,
    id: &str,
    e: EditClass,
) -> ApiResult<rollcall_ledger::ClassEdited> {
    class_in_scope(st, staff, id).await?;
    let e = rollcall_ledger::ClassEdit {
        name: e.name,
        teacher: e.teacher,
        room_id: e.room_id.filter(|r| !r.trim().is_empty()),
        capacity: e.capacity,
        policy: e.policy,
    };
    Ok(run(staff, st.store.edit_class(id, &e)).await?)
}

pub(super) async fn edit_class(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<EditClass>,
) -> ApiResult<Json<ClassEdited>> {
    let r = edit_class_for(&st, &staff, &id, e).await?;
    Ok(Json(ClassEdited {
        class_id: r.class_id,
        lessons_updated: r.lessons_updated,
    }))
}

/// A weekly series to create (the request body of `createSeries`): a weekday, a school-time
/// start, a length, a first and a last day (both school-local, both included).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSeries {
    pub(crate) class_id: String,
    /// `mon`, `tue`, … `sun`.
    pub(crate) weekday: String,
    /// `HH:MM`, school time.
    pub(crate) start_time: String,
    pub(crate) minutes: u32,
    pub(crate) first_day: chrono::NaiveDate,
    pub(crate) last_day: chrono::NaiveDate,
    /// Defaults to the class's room.
    #[serde(default)]
    pub(crate) room_id: Option<String>,
    /// Defaults to the class's teacher.
    #[serde(default)]
    pub(crate) teacher: Option<String>,
}

/// What creating or changing a series did.
#[derive(Serialize, ToSchema)]
pub(crate) struct SeriesChanged {
    series_id: String,
    /// Lessons added (ids).
    added: Vec<String>,
    /// Lessons cancelled (a series made shorter); their booked guardians are told.
    cancelled: Vec<String>,
    /// Days of the weekday skipped as holidays.
    holidays_skipped: Vec<chrono::NaiveDate>,
    /// Guardian notices written.
    notices: usize,
}

impl From<rollcall_ledger::SeriesChange> for SeriesChanged {
    fn from(c: rollcall_ledger::SeriesChange) -> Self {
        SeriesChanged {
            series_id: c.series_id,
            added: c.added,
            cancelled: c.cancelled,
            holidays_skipped: c.holidays_skipped,
            notices: c.notices,
        }
    }
}

pub(crate) async fn create_series_for(
    st: &AppState,
    staff: &Staff,
    s: CreateSeries,
) -> ApiResult<rollcall_ledger::SeriesChange> {
    class_in_scope(st, staff, &s.class_id).await?;
    let s = rollcall_ledger::NewSeries {
        class_id: s.class_id,
        weekday: s.weekday,
        start_time: s.start_time,
        minutes: s.minutes,
        first_day: s.first_day,
        last_day: s.last_day,
        room_id: s.room_id.filter(|r| !r.trim().is_empty()),
        teacher: s.teacher.filter(|t| !t.trim().is_empty()),
    };
    Ok(run(staff, st.store.create_series(&s)).await?)
}

pub(super) async fn create_series(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(s): JsonBody<CreateSeries>,
) -> ApiResult<(StatusCode, Json<SeriesChanged>)> {
    let c = create_series_for(&st, &staff, s).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// A series' new last day (the request body of `setSeriesEnd`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SeriesEnd {
    pub(crate) last_day: chrono::NaiveDate,
    pub(crate) reason: String,
}

/// The class of series `id` (the series' id starts with it, but the row is the authority).
async fn series_class(st: &AppState, id: &str) -> ApiResult<String> {
    st.store
        .series_class(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown series {id:?}")))
}

/// Series `id` exists and its class is on one of the reader's campuses.
pub(crate) async fn series_in_scope(st: &AppState, staff: &Staff, id: &str) -> ApiResult<()> {
    let class = series_class(st, id).await?;
    class_in_scope(st, staff, &class).await
}

pub(crate) async fn set_series_end_for(
    st: &AppState,
    staff: &Staff,
    id: &str,
    e: &SeriesEnd,
) -> ApiResult<rollcall_ledger::SeriesChange> {
    series_in_scope(st, staff, id).await?;
    Ok(run(staff, st.store.set_series_end(id, e.last_day, &e.reason)).await?)
}

pub(super) async fn set_series_end(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(e): JsonBody<SeriesEnd>,
) -> ApiResult<Json<SeriesChanged>> {
    Ok(Json(set_series_end_for(&st, &staff, &id, &e).await?.into()))
}

/// A class's weekly series.
#[derive(Serialize, ToSchema)]
pub(super) struct SeriesList {
    #[schema(value_type = Vec<crate::schema::SeriesView>)]
    series: Vec<rollcall_ledger::SeriesView>,
}

pub(super) async fn list_series(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<SeriesList>> {
    class_in_scope(&st, &staff, &id).await?;
    Ok(Json(SeriesList {
        series: st.store.series_of(&id).await?,
    }))
}

/// Why a lesson is cancelled (the request body of `cancelLesson`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelLesson {
    pub(crate) reason: String,
}

/// What cancelling did.
#[derive(Serialize, ToSchema)]
pub(super) struct LessonCancelled {
    lesson_id: String,
    /// Students who were booked (their guardians are told).
    students: Vec<String>,
    leave_dropped: usize,
    makeups_dropped: usize,
    notices: usize,
}

pub(crate) async fn lesson_in_scope(
    st: &AppState,
    staff: &Staff,
    id: &str,
) -> ApiResult<LessonView> {
    let l = match st.store.lesson(id).await {
        Err(rollcall_ledger::LedgerError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!("unknown lesson {id:?}")))
        }
        r => r?,
    };
    staff.campus(&l.campus_id)?;
    Ok(l)
}

pub(crate) async fn cancel_lesson_for(
    st: &AppState,
    staff: &Staff,
    id: &str,
    c: &CancelLesson,
) -> ApiResult<rollcall_ledger::LessonCancelled> {
    lesson_in_scope(st, staff, id).await?;
    Ok(run(staff, st.store.cancel_lesson(id, &c.reason)).await?)
}

pub(super) async fn cancel_lesson(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(c): JsonBody<CancelLesson>,
) -> ApiResult<Json<LessonCancelled>> {
    let r = cancel_lesson_for(&st, &staff, &id, &c).await?;
    Ok(Json(LessonCancelled {
        lesson_id: r.lesson_id,
        students: r.students,
        leave_dropped: r.leave_dropped,
        makeups_dropped: r.makeups_dropped,
        notices: r.notices,
    }))
}

/// Where a lesson moves (the request body of `moveLesson`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveLesson {
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    /// Absent: the room stays.
    #[serde(default)]
    pub(crate) room_id: Option<String>,
    /// Absent: the teacher stays.
    #[serde(default)]
    pub(crate) teacher: Option<String>,
    pub(crate) reason: String,
}

/// What moving did.
#[derive(Serialize, ToSchema)]
pub(super) struct LessonMoved {
    lesson_id: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    students: Vec<String>,
    notices: usize,
}

pub(crate) async fn move_lesson_for(
    st: &AppState,
    staff: &Staff,
    id: &str,
    m: MoveLesson,
) -> ApiResult<rollcall_ledger::LessonMoved> {
    lesson_in_scope(st, staff, id).await?;
    let m = rollcall_ledger::LessonMove {
        start: m.start,
        end: m.end,
        room_id: m.room_id.filter(|r| !r.trim().is_empty()),
        teacher: m.teacher.filter(|t| !t.trim().is_empty()),
        reason: m.reason,
    };
    Ok(run(staff, st.store.move_lesson(id, &m)).await?)
}

pub(super) async fn move_lesson(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(m): JsonBody<MoveLesson>,
) -> ApiResult<Json<LessonMoved>> {
    let r = move_lesson_for(&st, &staff, &id, m).await?;
    Ok(Json(LessonMoved {
        lesson_id: r.lesson_id,
        from: r.from,
        to: r.to,
        students: r.students,
        notices: r.notices,
    }))
}

/// The school's holidays from today on.
#[derive(Serialize, ToSchema)]
pub(super) struct HolidayList {
    #[schema(value_type = Vec<crate::schema::HolidayView>)]
    holidays: Vec<rollcall_ledger::HolidayView>,
}

pub(super) async fn list_holidays(State(st): State<AppState>) -> ApiResult<Json<HolidayList>> {
    let today = rollcall_domain::timetable::local_day(st.store.now(), st.store.tz_offset_minutes());
    Ok(Json(HolidayList {
        holidays: st.store.holidays(today).await?,
    }))
}

/// A holiday to declare (the request body of `addHoliday`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddHoliday {
    pub(crate) day: chrono::NaiveDate,
    pub(crate) name: String,
}

/// What declaring a holiday did.
#[derive(Serialize, ToSchema)]
pub(super) struct HolidayAdded {
    day: chrono::NaiveDate,
    name: String,
    /// That day's lessons cancelled (guardians told).
    cancelled: Vec<String>,
    notices: usize,
}

/// Holidays are the whole school's: they cancel every campus's lessons of the day, so only an
/// account of every campus declares or removes one.
pub(crate) async fn add_holiday_for(
    st: &AppState,
    staff: &Staff,
    h: &AddHoliday,
) -> ApiResult<rollcall_ledger::HolidayAdded> {
    super::require_all_campuses(staff)?;
    Ok(run(staff, st.store.add_holiday(h.day, &h.name)).await?)
}

pub(super) async fn add_holiday(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(h): JsonBody<AddHoliday>,
) -> ApiResult<(StatusCode, Json<HolidayAdded>)> {
    let r = add_holiday_for(&st, &staff, &h).await?;
    Ok((
        StatusCode::CREATED,
        Json(HolidayAdded {
            day: r.day,
            name: r.name,
            cancelled: r.cancelled,
            notices: r.notices,
        }),
    ))
}

/// The holiday removed.
#[derive(Serialize, ToSchema)]
pub(super) struct HolidayRemoved {
    day: chrono::NaiveDate,
}

pub(crate) async fn remove_holiday_for(
    st: &AppState,
    staff: &Staff,
    day: &str,
) -> ApiResult<chrono::NaiveDate> {
    super::require_all_campuses(staff)?;
    let d = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(format!("day {day:?}: expected YYYY-MM-DD")))?;
    run(staff, st.store.remove_holiday(d)).await?;
    Ok(d)
}

pub(super) async fn remove_holiday(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(day): Path<String>,
) -> ApiResult<Json<HolidayRemoved>> {
    let day = remove_holiday_for(&st, &staff, &day).await?;
    Ok(Json(HolidayRemoved { day }))
}

/// A student's move to another class (the request body of `transferStudent`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Transfer {
    pub(crate) from_class: String,
    pub(crate) to_class: String,
    pub(crate) reason: String,
}

/// What a transfer did.
#[derive(Serialize, ToSchema)]
pub(super) struct Transferred {
    student_id: String,
    from_class: String,
    to_class: String,
    /// Leave requests for the old class's lessons still to come, dropped with it.
    leave_dropped: usize,
}

pub(crate) async fn transfer_for(
    st: &AppState,
    staff: &Staff,
    student: &str,
    t: &Transfer,
) -> ApiResult<rollcall_ledger::Transferred> {
    student_in_scope(st, staff, student).await?;
    class_in_scope(st, staff, &t.from_class).await?;
    match st.store.class_campus(&t.to_class).await? {
        Some(c) => staff.campus(&c)?,
        None => {
            return Err(ApiError::invalid(format!(
                "to_class: there is no class {:?}",
                t.to_class
            )))
        }
    }
    Ok(run(
        staff,
        st.store
            .transfer_student(student, &t.from_class, &t.to_class, &t.reason),
    )
    .await?)
}

pub(super) async fn transfer(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(t): JsonBody<Transfer>,
) -> ApiResult<Json<Transferred>> {
    let r = transfer_for(&st, &staff, &id, &t).await?;
    Ok(Json(Transferred {
        student_id: r.student_id,
        from_class: r.from_class,
        to_class: r.to_class,
        leave_dropped: r.leave_dropped,
    }))
}

/// A slot to add to a class (the request body of `addSlot`): typically a 1-on-1 class's lesson
/// for a make-up.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddSlot {
    pub(crate) start: DateTime<Utc>,
    pub(crate) minutes: u32,
    /// Defaults to the class's room.
    #[serde(default)]
    pub(crate) room_id: Option<String>,
}

/// The slot added.
#[derive(Serialize, ToSchema)]
pub(super) struct SlotAdded {
    lesson_id: String,
}

pub(crate) async fn add_slot_for(
    st: &AppState,
    staff: &Staff,
    class: &str,
    s: &AddSlot,
) -> ApiResult<String> {
    class_in_scope(st, staff, class).await?;
    let room = s.room_id.as_deref().filter(|r| !r.trim().is_empty());
    Ok(run(staff, st.store.add_slot(class, s.start, s.minutes, room)).await?)
}

pub(super) async fn add_slot(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(s): JsonBody<AddSlot>,
) -> ApiResult<(StatusCode, Json<SlotAdded>)> {
    let lesson_id = add_slot_for(&st, &staff, &id, &s).await?;
    Ok((StatusCode::CREATED, Json(SlotAdded { lesson_id })))
}
