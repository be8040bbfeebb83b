//! The front desk's daily lists (issue 21 item 8): who has not arrived yet for the lessons
//! running now or starting within the hour, with the guardians' phone numbers; who needs to
//! renew (few lessons left, a package about to expire); the searchable student list. And the
//! teacher's day (item 9): "my lessons today" with their rosters, and the roll call that marks
//! a student present by hand (the API's manual check-in).

use super::{check_in_by_hand, day_bounds, run, student_in_scope};
use crate::auth::{roles, Staff};
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use rollcall_domain::ledger::AttendanceSource;
use rollcall_ledger::{BoardLesson, CheckInResult, StudentStatus};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

/// How far ahead the call list looks: lessons starting within this many minutes.
pub(crate) const CALL_AHEAD_MINUTES: i64 = 60;

/// The call list looks back this far for lessons still running.
const LONGEST_LESSON_HOURS: i64 = 12;

/// A way to reach a guardian.
#[derive(Serialize, ToSchema, Clone)]
pub(crate) struct Contact {
    pub(crate) name: String,
    pub(crate) phone: Option<String>,
    pub(crate) wechat_id: Option<String>,
}

/// A student not arrived yet for a lesson running now or starting soon.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallEntry {
    pub(crate) lesson_id: String,
    pub(crate) class_name: String,
    pub(crate) campus_id: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) student_id: String,
    pub(crate) student_name: String,
    pub(crate) guardians: Vec<Contact>,
}

/// The "not arrived yet" list: booked students (suspended ones excepted) of the lessons that
/// have started and not ended, or start within the hour, with no check-in yet.
#[derive(Serialize, ToSchema)]
pub(crate) struct CallList {
    pub(crate) at: DateTime<Utc>,
    pub(crate) entries: Vec<CallEntry>,
}

#[derive(Deserialize)]
pub(crate) struct CampusQuery {
    pub(crate) campus: Option<String>,
}

fn contacts(g: &HashMap<String, Vec<rollcall_ledger::GuardianDetail>>, id: &str) -> Vec<Contact> {
    g.get(id)
        .map(|v| {
            v.iter()
                .map(|g| Contact {
                    name: g.name.clone(),
                    phone: g.phone.clone(),
                    wechat_id: g.wechat_id.clone(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn campus_filter(staff: &Staff, campus: &Option<String>) -> ApiResult<Option<String>> {
    let c = campus.clone().filter(|c| !c.trim().is_empty());
    if let Some(c) = &c {
        staff.campus(c)?;
    }
    Ok(c)
}

/// The call list now, for the caller's campuses (one campus when `campus` is given).
pub(crate) async fn call_list_for(
    st: &AppState,
    staff: &Staff,
    campus: &Option<String>,
) -> ApiResult<CallList> {
    let campus = campus_filter(staff, campus)?;
    let now = st.store.now();
    // running now (a lesson that began before midnight too) or starting within the hour
    let since = now - Duration::hours(LONGEST_LESSON_HOURS);
    let until = now + Duration::minutes(CALL_AHEAD_MINUTES);
    let states = st.store.student_states().await?;
    let guardians = st.store.guardians_by_student().await?;
    let mut entries = Vec::new();
    for l in st.store.board(since, until).await? {
        if l.lesson.end <= now
            || !staff.allows_campus(&l.lesson.campus_id)
            || campus.as_ref().is_some_and(|c| c != &l.lesson.campus_id)
        {
            continue;
        }
        for s in &l.students {
            let active = states
                .get(&s.student_id)
                .is_none_or(|x| x.status == StudentStatus::Active);
            if s.status != "not_yet" || !active {
                continue;
            }
            entries.push(CallEntry {
                lesson_id: l.lesson.id.clone(),
                class_name: l.lesson.class_name.clone(),
                campus_id: l.lesson.campus_id.clone(),
                start: l.lesson.start,
                end: l.lesson.end,
                student_id: s.student_id.clone(),
                student_name: s.name.clone(),
                guardians: contacts(&guardians, &s.student_id),
            });
        }
    }
    Ok(CallList { at: now, entries })
}

pub(super) async fn call_list(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<CampusQuery>,
) -> ApiResult<Json<CallList>> {
    Ok(Json(call_list_for(&st, &staff, &q.campus).await?))
}

/// A package with lessons left that expires within the school's warning days.
#[derive(Serialize, ToSchema)]
pub(crate) struct ExpiringPackage {
    pub(crate) package_id: String,
    pub(crate) expires_at: DateTime<Utc>,
    /// Lessons left in it, two decimals.
    pub(crate) balance: String,
}

/// A student who should renew: few lessons left (at or below the school's alert threshold)
/// or a package about to expire.
#[derive(Serialize, ToSchema)]
pub(crate) struct RenewalEntry {
    pub(crate) student_id: String,
    pub(crate) student_name: String,
    pub(crate) campuses: Vec<String>,
    /// Lessons available, two decimals.
    pub(crate) available: String,
    pub(crate) low_balance: bool,
    pub(crate) expiring: Vec<ExpiringPackage>,
    pub(crate) guardians: Vec<Contact>,
}

/// The renewal list, with the school's thresholds.
#[derive(Serialize, ToSchema)]
pub(crate) struct RenewalList {
    pub(crate) at: DateTime<Utc>,
    /// Available lessons at or below this are low (hundredths of a lesson).
    pub(crate) low_balance_units: i64,
    pub(crate) expiry_warning_days: i64,
    pub(crate) entries: Vec<RenewalEntry>,
}

fn units_text(u: i64) -> String {
    format!("{:.2}", u as f64 / 100.0)
}

/// The renewal list of the caller's campuses' active students.
pub(crate) async fn renewals_for(
    st: &AppState,
    staff: &Staff,
    campus: &Option<String>,
) -> ApiResult<RenewalList> {
    let campus = campus_filter(staff, campus)?;
    let now = st.store.now();
    let policy = st.store.policy().alerts;
    let horizon = now + Duration::days(policy.expiry_warning_days.max(0));
    let states = st.store.student_states().await?;
    let guardians = st.store.guardians_by_student().await?;
    let listed: Vec<_> = st
        .store
        .students()
        .await?
        .into_iter()
        .filter(|s| {
            let in_reach =
                staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c));
            let active = states
                .get(&s.id)
                .is_none_or(|x| x.status == StudentStatus::Active);
            in_reach && active && campus.as_ref().is_none_or(|c| s.campuses.contains(c))
        })
        .collect();
    // every listed student's balance in one grouped query, not one query each
    let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    let mut balances = st.store.balances(&ids, now).await?;
    let mut entries = Vec::new();
    for s in listed {
        let Some(b) = balances.remove(&s.id) else {
            continue;
        };
        let low = b.available_units <= policy.low_balance_units;
        let expiring: Vec<ExpiringPackage> = b
            .packages
            .iter()
            .filter(|p| {
                !p.expired && p.package.balance_units > 0 && p.package.expires_at <= horizon
            })
            .map(|p| ExpiringPackage {
                package_id: p.package.package_id.clone(),
                expires_at: p.package.expires_at,
                balance: units_text(p.package.balance_units),
            })
            .collect();
        if !low && expiring.is_empty() {
            continue;
        }
        entries.push(RenewalEntry {
            guardians: contacts(&guardians, &s.id),
            student_id: s.id,
            student_name: s.name,
            campuses: s.campuses,
            available: units_text(b.available_units),
            low_balance: low,
            expiring,
        });
    }
    Ok(RenewalList {
        at: now,
        low_balance_units: policy.low_balance_units,
        expiry_warning_days: policy.expiry_warning_days,
        entries,
    })
}

pub(super) async fn renewals(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<CampusQuery>,
) -> ApiResult<Json<RenewalList>> {
    Ok(Json(renewals_for(&st, &staff, &q.campus).await?))
}

/// A row of the searchable student list.
#[derive(Serialize, ToSchema)]
pub(crate) struct StudentRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) campuses: Vec<String>,
    /// `active`, `suspended` or `left`.
    pub(crate) status: String,
    /// Lessons available now, two decimals.
    pub(crate) available: String,
    /// Names of the classes the student is enrolled in.
    pub(crate) classes: Vec<String>,
    pub(crate) guardians: Vec<Contact>,
}

/// Students matching the search (at most [`SEARCH_LIMIT`]); `more`: there were more.
#[derive(Serialize, ToSchema)]
pub(crate) struct StudentSearch {
    pub(crate) students: Vec<StudentRow>,
    pub(crate) more: bool,
}

/// Most rows a search answers.
pub(crate) const SEARCH_LIMIT: usize = 200;

#[derive(Deserialize, Default)]
pub(crate) struct SearchQuery {
    /// Part of the id, the name, a guardian's name, phone or WeChat id (any case).
    pub(crate) q: Option<String>,
    pub(crate) campus: Option<String>,
    /// `active`, `suspended` or `left`; default: all.
    pub(crate) status: Option<String>,
}

/// The caller's campuses' students matching `q`, with balance, classes and guardians.
pub(crate) async fn search_for(
    st: &AppState,
    staff: &Staff,
    q: &SearchQuery,
) -> ApiResult<StudentSearch> {
    let campus = campus_filter(staff, &q.campus)?;
    let status = match q.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(StudentStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!("status: {s:?}: active, suspended or left"))
        })?),
        None => None,
    };
    let needle =
        q.q.as_deref()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty());
    if needle.as_ref().is_some_and(|n| n.chars().count() > 100) {
        return Err(ApiError::invalid("q: at most 100 characters"));
    }
    let now = st.store.now();
    let states = st.store.student_states().await?;
    let guardians = st.store.guardians_by_student().await?;
    let classes = st.store.class_names_by_student().await?;
    let mut hits = Vec::new();
    let mut more = false;
    for s in st.store.students().await? {
        let in_reach = staff.is_all_campuses() || s.campuses.iter().any(|c| staff.allows_campus(c));
        if !in_reach || campus.as_ref().is_some_and(|c| !s.campuses.contains(c)) {
            continue;
        }
        let state = states
            .get(&s.id)
            .map_or(StudentStatus::Active, |x| x.status);
        if status.is_some_and(|x| x != state) {
            continue;
        }
        let gs = guardians.get(&s.id).cloned().unwrap_or_default();
        if let Some(n) = &needle {
            let hit = s.id.to_lowercase().contains(n)
                || s.name.to_lowercase().contains(n)
                || gs.iter().any(|g| {
                    g.name.to_lowercase().contains(n)
                        || g.phone.as_deref().is_some_and(|p| p.contains(n.as_str()))
                        || g.wechat_id
                            .as_deref()
                            .is_some_and(|w| w.to_lowercase().contains(n))
                });
            if !hit {
                continue;
            }
        }
        if hits.len() == SEARCH_LIMIT {
            more = true;
            break;
        }
        hits.push((s, state));
    }
    // the hits' balances in one grouped query, not one query each
    let ids: Vec<&str> = hits.iter().map(|(s, _)| s.id.as_str()).collect();
    let balances = st.store.balances(&ids, now).await?;
    let mut rows = Vec::with_capacity(hits.len());
    for (s, state) in hits {
        let available = balances.get(&s.id).map_or(0, |b| b.available_units);
        rows.push(StudentRow {
            guardians: contacts(&guardians, &s.id),
            classes: classes.get(&s.id).cloned().unwrap_or_default(),
            status: state.as_str().into(),
            available: units_text(available),
            id: s.id,
            name: s.name,
            campuses: s.campuses,
        });
    }
    Ok(StudentSearch {
        students: rows,
        more,
    })
}

pub(super) async fn search(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<StudentSearch>> {
    Ok(Json(search_for(&st, &staff, &q).await?))
}

/// A teacher's lessons of one day, each with its roster and who is in or missing.
#[derive(Serialize, ToSchema)]
pub(crate) struct TeacherDay {
    pub(crate) teacher: String,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    #[schema(value_type = Vec<crate::schema::BoardLesson>)]
    pub(crate) lessons: Vec<BoardLesson>,
}

#[derive(Deserialize, Default)]
pub(crate) struct TeacherQuery {
    /// The teacher (as `lessons.teacher` names them); default: the caller. A teacher sees
    /// only their own.
    pub(crate) teacher: Option<String>,
    pub(crate) date: Option<String>,
}

/// Whose lessons: a teacher's own always; other roles may name any teacher (default: their
/// own account). A lesson's `teacher` is the teaching staff account's username.
fn teacher_of(staff: &Staff, asked: &Option<String>) -> ApiResult<String> {
    let me = staff.account.username.clone();
    match asked.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(me),
        Some(t) if t == me => Ok(me),
        Some(_) if staff.role() == rollcall_ledger::Role::Teacher => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_your_lessons",
            "a teacher sees their own lessons",
        )),
        Some(t) => Ok(t.to_string()),
    }
}

/// The day's lessons of a teacher in the caller's campuses.
pub(crate) async fn teacher_day_for(
    st: &AppState,
    staff: &Staff,
    q: &TeacherQuery,
) -> ApiResult<TeacherDay> {
    let teacher = teacher_of(staff, &q.teacher)?;
    let (from, to) = day_bounds(st, q.date.as_deref())?;
    let states = st.store.student_states().await?;
    let lessons = st
        .store
        .board(from, to)
        .await?
        .into_iter()
        .filter(|l| l.lesson.teacher == teacher && staff.allows_campus(&l.lesson.campus_id))
        .map(|mut l| {
            // suspended students are not expected: off the roster unless they came
            l.students.retain(|s| {
                s.status != "not_yet"
                    || states
                        .get(&s.student_id)
                        .is_none_or(|x| x.status == StudentStatus::Active)
            });
            l.counts.clear();
            for s in &l.students {
                *l.counts.entry(s.status.clone()).or_insert(0) += 1;
            }
            l
        })
        .collect();
    Ok(TeacherDay {
        teacher,
        from,
        to,
        lessons,
    })
}

pub(super) async fn teacher_day(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<TeacherQuery>,
) -> ApiResult<Json<TeacherDay>> {
    Ok(Json(teacher_day_for(&st, &staff, &q).await?))
}

/// What marking the student present did: the check-in (`manual`), and whether it was recorded
/// for this lesson.
#[derive(Serialize, ToSchema)]
pub(crate) struct RollCalled {
    pub(crate) lesson_id: String,
    pub(crate) student_id: String,
    /// The check-in counts for this lesson (recorded now or before).
    pub(crate) for_this_lesson: bool,
    #[schema(value_type = crate::schema::CheckInResult)]
    pub(crate) check_in: CheckInResult,
}

/// How long before a lesson its roll call opens.
pub(crate) const ROLL_CALL_EARLY_MINUTES: i64 = 60;

/// Marks `student` present at `lesson` by hand: the lesson in the caller's campuses (a
/// teacher's own lessons only), the student on its roster, between an hour before the start
/// and the end; the API's manual check-in (the same exactly-once rules as the camera's; marking
/// twice changes nothing).
pub(crate) async fn roll_call_for(
    st: &AppState,
    staff: &Staff,
    lesson: &str,
    student: &str,
) -> ApiResult<RollCalled> {
    staff.require(roles::DESK)?;
    let l = st.store.lesson(lesson).await?;
    staff.campus(&l.campus_id)?;
    student_in_scope(st, staff, student).await?;
    if staff.role() == rollcall_ledger::Role::Teacher && l.teacher != staff.account.username {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_your_lesson",
            format!("lesson {lesson:?} is another teacher's"),
        ));
    }
    let board = st
        .store
        .board(l.start, l.start + Duration::milliseconds(1))
        .await?;
    let booked = board
        .iter()
        .find(|b| b.lesson.id == l.id)
        .is_some_and(|b| b.students.iter().any(|s| s.student_id == student));
    if !booked {
        return Err(ApiError::invalid(format!(
            "student: {student:?} is not on the roster of lesson {lesson:?}"
        )));
    }
    let now = st.store.now();
    if now < l.start - Duration::minutes(ROLL_CALL_EARLY_MINUTES) || now > l.end {
        return Err(ApiError::invalid(format!(
            "lesson: the roll call is open from {ROLL_CALL_EARLY_MINUTES} minutes before the lesson to its end"
        )));
    }
    let r = check_in_by_hand(
        st,
        staff,
        student,
        AttendanceSource::Manual,
        None,
        Some(format!("rollcall:{lesson}:{student}")),
    )
    .await?;
    // what the lesson's roster says now (a repeated mark is the same event: nothing changes)
    let for_this_lesson = st
        .store
        .board(l.start, l.start + Duration::milliseconds(1))
        .await?
        .iter()
        .find(|b| b.lesson.id == l.id)
        .and_then(|b| b.students.iter().find(|s| s.student_id == student))
        .is_some_and(|s| s.status != "not_yet");
    Ok(RollCalled {
        lesson_id: lesson.into(),
        student_id: student.into(),
        for_this_lesson,
        check_in: r,
    })
}

pub(super) async fn roll_call(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((lesson, student)): Path<(String, String)>,
) -> ApiResult<Json<RollCalled>> {
    let r = run(&staff, roll_call_for(&st, &staff, &lesson, &student)).await?;
    Ok(Json(r))
}
