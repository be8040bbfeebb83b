//! Leave and make-up in the staff app (issue 21 item 5) and attendance corrections that fix the
//! money (item 4): the leave page (pending requests with Approve/Refuse, recent decisions, a
//! student's leave form and make-up booking, the monthly make-up number), a student's
//! attendance page with a correction form per lesson, and their forms. The forms go through
//! the API's own functions (`v1::…_for`: role, campus and teacher checks, audit), so the page
//! and the JSON API cannot disagree.

use super::layout::page_keeping;
use super::{check_csrf, local, picker, t, url, words_in_lang_field, Choice, Lang, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::{DateTime, Duration, Utc};
use rollcall_domain::ledger::AttendanceStatus;
use rollcall_ledger::{LeaveState, LessonBrief};
use serde::Deserialize;

/// How far ahead the leave and make-up forms offer lessons.
const AHEAD_DAYS: i64 = 60;
/// How far back a student's attendance page goes.
const BACK_DAYS: i64 = 90;

/// What the last form did (the redirect after a post carries it).
#[derive(Deserialize, Default)]
pub(super) struct LeaveQ {
    student: Option<String>,
    done: Option<String>,
    n: Option<i64>,
    limit: Option<i64>,
}

/// A lesson as a person reads it: local date and time, class, campus.
fn lesson_label(st: &AppState, l: &LessonBrief) -> String {
    format!(
        "{}–{} {} ({})",
        local(st, l.start).format("%Y-%m-%d %H:%M"),
        local(st, l.end).format("%H:%M"),
        l.class_name,
        l.campus_id
    )
}

/// A lesson to choose.
struct LessonChoice {
    id: String,
    label: String,
}

/// A leave request of the lists.
struct LeaveRow {
    student_id: String,
    /// `student_id` for a query or a path.
    student_q: String,
    student_name: String,
    lesson_id: String,
    lesson: String,
    reason: String,
    requested: String,
    state: &'static str,
    decided: String,
    makeup: String,
}

/// A missed (or to be missed) lesson of the student with the lessons it can be made up in.
struct MakeupRow {
    lesson_id: String,
    lesson: String,
    why: &'static str,
    choices: Vec<LessonChoice>,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = done -%}
<p class='card ok' id=done>{{ d }}</p>
{%- endif -%}
{%- if let Some(w) = warning -%}
<p class='card err' id=over-limit>{{ w }}</p>
{%- endif -%}
<div class=card id=pending><h2>{{ t("lm_leave_pending") }}</h2>
{%- if pending.is_empty() -%}<p>{{ t("lm_leave_none") }}</p>{%- else -%}
<table><tr><th>{{ t("lm_student_name") }}</th><th>{{ t("lm_lesson") }}</th><th>{{ t("lm_reason") }}</th><th>{{ t("lm_leave_requested") }}</th>{% if may_decide %}<th></th>{% endif %}</tr>
{%- for l in pending -%}
<tr><td><a href="/app/leave?student={{ l.student_q }}">{{ l.student_name }}</a></td><td>{{ l.lesson }}</td><td>{{ l.reason }}</td><td>{{ l.requested }}</td>
{%- if may_decide -%}
<td><form method=post action=/app/leave/decide class=inline><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=student value="{{ l.student_id }}"><input type=hidden name=lesson_id value="{{ l.lesson_id }}"><input name=note maxlength=500 placeholder="{{ t("lm_leave_note") }}"><button name=decision value=approve>{{ t("lm_leave_approve") }}</button><button name=decision value=refuse class=alt>{{ t("lm_leave_refuse") }}</button></form></td>
{%- endif -%}
</tr>
{%- endfor -%}
</table>
{%- endif -%}
</div>
{%- if let Some(s) = student -%}
<div class=card id=student-leave><h2>{{ s.name }}</h2><p><a href="/app/students/{{ s.id_q }}">{{ t("lm_student_page") }}</a> · <a href="/app/students/{{ s.id_q }}/attendance">{{ t("lm_attendance_history") }}</a></p><p id=makeup-count>{{ s.makeup_count }}</p>
{%- if may_enter -%}
<h3>{{ t("lm_leave_enter") }}</h3>
{%- if s.upcoming.is_empty() -%}<p>{{ t("lm_leave_no_upcoming") }}</p>{%- else -%}
<form method=post action=/app/leave/request id=leave-form><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=student value="{{ s.id }}"><label>{{ t("lm_lesson") }} <select name=lesson_id required>
{%- for l in s.upcoming -%}<option value="{{ l.id }}">{{ l.label }}</option>{%- endfor -%}
</select></label> <label>{{ t("lm_reason") }} <input name=reason required maxlength=500></label> <button>{{ t("lm_leave_enter_button") }}</button></form>
{%- endif -%}
{%- endif -%}
{%- if may_decide -%}
<h3>{{ t("lm_makeup_book") }}</h3>
{%- if s.missed.is_empty() -%}<p>{{ t("lm_makeup_nothing") }}</p>{%- endif -%}
{%- for m in s.missed -%}
<form method=post action=/app/leave/makeup class=makeup-form><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=student value="{{ s.id }}"><input type=hidden name=missed_lesson_id value="{{ m.lesson_id }}"><p>{{ m.lesson }} · {{ m.why }}</p>
{%- if m.choices.is_empty() -%}<p>{{ t("lm_makeup_no_choices") }}</p>{%- else -%}
<label>{{ t("lm_makeup_lesson") }} <select name=lesson_id required>
{%- for c in m.choices -%}<option value="{{ c.id }}">{{ c.label }}</option>{%- endfor -%}
</select></label> <button>{{ t("lm_makeup_book_button") }}</button>
{%- endif -%}
</form>
{%- endfor -%}
{%- endif -%}
<h3>{{ t("lm_leave_history") }}</h3><table>
{%- for l in s.history -%}
<tr><td>{{ l.lesson }}</td><td>{{ l.state }}</td><td>{{ l.reason }}</td><td>{{ l.decided }}</td><td>{{ l.makeup }}</td></tr>
{%- endfor -%}
</table></div>
{%- else -%}
<div class=card id=pick-student><form method=get action=/app/leave><label>{{ t("lm_student_name") }} <input name=student list=students required autocomplete=off maxlength=200></label> <button>{{ t("show_day") }}</button></form>
<datalist id=students>
{%- for c in picker -%}<option value="{{ c.id }}">{{ c.name }}</option>{%- endfor -%}
</datalist></div>
{%- endif -%}
<div class=card id=decided><h2>{{ t("lm_leave_decided") }}</h2><table>
{%- for l in decided -%}
<tr><td>{{ l.student_name }}</td><td>{{ l.lesson }}</td><td>{{ l.state }}</td><td>{{ l.decided }}</td><td>{{ l.makeup }}</td></tr>
{%- endfor -%}
</table></div>
<div class=card id=makeup-limit><p>{{ limit_text }}</p>
{%- if may_set_limit -%}
<form method=post action=/app/leave/limit><input type=hidden name=_csrf value="{{ csrf }}"><label>{{ t("lm_makeup_limit_label") }} <input name=makeups_per_month type=number min=0 max=100 required value="{{ limit }}"></label> <button>{{ t("lm_save") }}</button></form>
{%- endif -%}
</div>"#
)]
struct LeavePage<'a> {
    lang: Lang,
    csrf: &'a str,
    done: Option<String>,
    warning: Option<String>,
    may_decide: bool,
    /// Whether the reader may enter a leave request (a teacher: for the lessons they teach).
    may_enter: bool,
    may_set_limit: bool,
    pending: Vec<LeaveRow>,
    decided: Vec<LeaveRow>,
    student: Option<StudentLeave>,
    picker: Vec<Choice>,
    limit: i64,
    limit_text: String,
}

/// The leave page's section about one student.
struct StudentLeave {
    id: String,
    id_q: String,
    name: String,
    makeup_count: String,
    upcoming: Vec<LessonChoice>,
    missed: Vec<MakeupRow>,
    history: Vec<LeaveRow>,
}

words_in_lang_field!(LeavePage<'_>);

fn leave_row(st: &AppState, lang: Lang, l: rollcall_ledger::LeaveView) -> LeaveRow {
    let when = |at: Option<DateTime<Utc>>| {
        at.map(|t| local(st, t).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    LeaveRow {
        lesson: lesson_label(st, &l.lesson),
        lesson_id: l.lesson.id,
        student_q: url(&l.student_id),
        student_id: l.student_id,
        student_name: l.student_name,
        reason: l.reason.unwrap_or_default(),
        requested: format!(
            "{} {}",
            when(Some(l.requested_at)),
            l.requested_by.unwrap_or_default()
        ),
        state: t(lang, leave_key(l.state)),
        decided: match l.decided_by {
            Some(by) => format!(
                "{} {by} {}",
                when(l.decided_at),
                l.decision_note.unwrap_or_default()
            ),
            None => String::new(),
        },
        makeup: l
            .makeup_lesson_id
            .map(|m| format!("{} {m}", t(lang, "lm_makeup")))
            .unwrap_or_default(),
    }
}

fn leave_key(s: LeaveState) -> &'static str {
    match s {
        LeaveState::Pending => "lm_leave_state_pending",
        LeaveState::Approved => "lm_leave_state_approved",
        LeaveState::Refused => "lm_leave_state_refused",
    }
}

pub(super) async fn leave_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<LeaveQ>,
) -> Result<Html<String>, ApiError> {
    let now = st.store.now();
    let limit = st.store.makeup_limit().await?;
    let student_id = q
        .student
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let all = v1::leaves_for(&st, &staff, None, None).await?;
    let (pending, rest): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|l| l.state == LeaveState::Pending);
    let pending = pending
        .into_iter()
        .map(|l| leave_row(&st, lang, l))
        .collect();
    let decided = rest
        .into_iter()
        .take(20)
        .map(|l| leave_row(&st, lang, l))
        .collect();
    let student = match student_id {
        Some(id) => Some(student_leave(&st, &staff, lang, id, now, limit).await?),
        None => None,
    };
    let picker = match student {
        Some(_) => Vec::new(),
        None => picker(&st.store.students().await?, &staff),
    };
    let done = q.done.as_deref().map(|d| {
        t(
            lang,
            match d {
                "requested" => "lm_done_leave_requested",
                "approved" => "lm_done_leave_approved",
                "refused" => "lm_done_leave_refused",
                "booked" => "lm_done_makeup_booked",
                "limit" => "lm_done_limit_saved",
                _ => "lm_done_saved",
            },
        )
        .to_string()
    });
    let warning = match (q.done.as_deref(), q.n, q.limit) {
        (Some("booked"), Some(n), Some(l)) if n > l => Some(
            t(lang, "lm_makeup_over_limit")
                .replace("{n}", &n.to_string())
                .replace("{limit}", &l.to_string()),
        ),
        _ => None,
    };
    let keep: Vec<(&'static str, String)> = student_id
        .map(|s| vec![("student", url(s))])
        .unwrap_or_default();
    let body = LeavePage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        done,
        warning,
        may_decide: staff.require(roles::ENROLL).is_ok(),
        may_enter: staff.require(roles::DESK).is_ok(),
        may_set_limit: staff.require(roles::MANAGE).is_ok() && staff.is_all_campuses(),
        pending,
        decided,
        student,
        picker,
        limit,
        limit_text: t(lang, "lm_makeup_limit_text").replace("{limit}", &limit.to_string()),
    };
    page_keeping(lang, &staff, t(lang, "lm_leave"), body, &keep)
}

async fn student_leave(
    st: &AppState,
    staff: &Staff,
    lang: Lang,
    id: &str,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<StudentLeave, ApiError> {
    let s = v1::student_in_reach(st, staff, id).await?;
    let until = now + Duration::days(AHEAD_DAYS);
    let leaves = v1::leaves_for(st, staff, None, Some(id)).await?;
    let has_leave = |lesson: &str| {
        leaves
            .iter()
            .any(|l| l.lesson.id == lesson && l.state != LeaveState::Refused)
    };
    let upcoming = st
        .store
        .booked_lessons(id, now, until)
        .await?
        .into_iter()
        // (a teacher enters leave for the lessons they teach only)
        .filter(|l| {
            staff.allows_campus(&l.campus_id)
                && !has_leave(&l.id)
                && v1::may_correct(staff, &l.teacher)
        })
        .map(|l| LessonChoice {
            label: lesson_label(st, &l),
            id: l.id,
        })
        .collect();
    // lessons to make up: approved or pending leave without a make-up, and recorded absences
    let mut missed: Vec<(LessonBrief, &'static str)> = leaves
        .iter()
        .filter(|l| l.state != LeaveState::Refused && l.makeup_lesson_id.is_none())
        .map(|l| (l.lesson.clone(), t(lang, leave_key(l.state))))
        .collect();
    let made_up: Vec<&str> = leaves
        .iter()
        .filter(|l| l.makeup_lesson_id.is_some())
        .map(|l| l.lesson.id.as_str())
        .collect();
    for a in st
        .store
        .attendance_lines(id, now - Duration::days(BACK_DAYS), now)
        .await?
    {
        let absent = matches!(
            a.status,
            Some(AttendanceStatus::Absent | AttendanceStatus::Excused)
        );
        if absent
            && !missed.iter().any(|(l, _)| l.id == a.lesson.id)
            && !made_up.contains(&a.lesson.id.as_str())
            && staff.allows_campus(&a.lesson.campus_id)
        {
            let why = t(lang, a.status.map_or("absent", |s| s.as_str()));
            missed.push((a.lesson, why));
        }
    }
    let booked_makeups = st.store.makeups_of(id).await?;
    let mut rows = Vec::new();
    for (l, why) in missed {
        if booked_makeups.iter().any(|m| m == &l.id) {
            continue;
        }
        let choices = st
            .store
            .makeup_choices(id, &l.id, now, until)
            .await?
            .into_iter()
            .filter(|c| staff.allows_campus(&c.campus_id))
            .map(|c| LessonChoice {
                label: lesson_label(st, &c),
                id: c.id,
            })
            .collect();
        rows.push(MakeupRow {
            lesson: lesson_label(st, &l),
            lesson_id: l.id,
            why,
            choices,
        });
    }
    let n = st.store.makeups_in_month(id, now).await?;
    Ok(StudentLeave {
        id: id.to_string(),
        id_q: url(id),
        name: s.name,
        makeup_count: t(lang, "lm_makeup_count")
            .replace("{n}", &n.to_string())
            .replace("{limit}", &limit.to_string()),
        upcoming,
        missed: rows,
        history: leaves.into_iter().map(|l| leave_row(st, lang, l)).collect(),
    })
}

/// A form field: trimmed, `""` when absent (every field is read, so a missing one is a clear
/// message of the handler's, not the form reader's rejection).
fn field(v: &Option<String>) -> &str {
    v.as_deref().map(str::trim).unwrap_or("")
}

/// A required form field, or the message naming it.
fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    match field(v) {
        "" => Err(ApiError::invalid(format!("{name}: required"))),
        s => Ok(s),
    }
}

#[derive(Deserialize)]
pub(super) struct LeaveForm {
    #[serde(default)]
    _csrf: String,
    student: Option<String>,
    lesson_id: Option<String>,
    reason: Option<String>,
}

fn back(student: &str, done: &str) -> Response {
    Redirect::to(&format!("/app/leave?student={}&done={done}", url(student))).into_response()
}

pub(super) async fn leave_request_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<LeaveForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let student = required(&f.student, "student")?;
    let e = v1::EnterLeave {
        lesson_id: required(&f.lesson_id, "lesson_id")?.to_string(),
        reason: required(&f.reason, "lm_reason")?.to_string(),
    };
    v1::enter_leave_for(&st, &staff, student, &e).await?;
    Ok(back(student, "requested"))
}

#[derive(Deserialize)]
pub(super) struct DecideForm {
    #[serde(default)]
    _csrf: String,
    student: Option<String>,
    lesson_id: Option<String>,
    decision: Option<String>,
    note: Option<String>,
}

pub(super) async fn leave_decide_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<DecideForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let student = required(&f.student, "student")?;
    let lesson = required(&f.lesson_id, "lesson_id")?;
    let d = v1::DecideLeave {
        decision: required(&f.decision, "decision")?.to_string(),
        note: Some(field(&f.note).to_string()),
    };
    let v = v1::decide_leave_for(&st, &staff, student, lesson, &d).await?;
    Ok(back(
        student,
        if v.state == LeaveState::Approved {
            "approved"
        } else {
            "refused"
        },
    ))
}

#[derive(Deserialize)]
pub(super) struct MakeupForm {
    #[serde(default)]
    _csrf: String,
    student: Option<String>,
    missed_lesson_id: Option<String>,
    lesson_id: Option<String>,
}

pub(super) async fn makeup_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<MakeupForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let student = required(&f.student, "student")?;
    let b = v1::BookMakeup {
        missed_lesson_id: required(&f.missed_lesson_id, "missed_lesson_id")?.to_string(),
        lesson_id: required(&f.lesson_id, "lesson_id")?.to_string(),
    };
    let m = v1::book_makeup_for(&st, &staff, student, &b).await?;
    Ok(Redirect::to(&format!(
        "/app/leave?student={}&done=booked&n={}&limit={}",
        url(student),
        m.makeups_this_month,
        m.monthly_limit
    ))
    .into_response())
}

#[derive(Deserialize)]
pub(super) struct LimitForm {
    #[serde(default)]
    _csrf: String,
    makeups_per_month: Option<String>,
}

pub(super) async fn limit_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<LimitForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let n: i64 = required(&f.makeups_per_month, "makeups_per_month")?
        .parse()
        .map_err(|_| ApiError::invalid("makeups_per_month: a whole number from 0 to 100"))?;
    v1::set_makeup_limit_for(&st, &staff, n).await?;
    Ok(Redirect::to("/app/leave?done=limit").into_response())
}

/// One lesson of the student's attendance page.
struct AttendanceRow {
    lesson_id: String,
    lesson: String,
    status: &'static str,
    charged: String,
    /// The statuses the correction form offers (all but the current one); empty: no form.
    options: Vec<(&'static str, &'static str)>,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = done -%}
<p class='card ok' id=done>{{ d }}</p>
{%- endif -%}
<div class=card id=attendance><p><a href="/app/students/{{ id_q }}">{{ name }}</a> · <a href="/app/leave?student={{ id_q }}">{{ t("lm_leave") }}</a></p><p>{{ t("lm_correct_help") }}</p><table><tr><th>{{ t("lm_lesson") }}</th><th>{{ t("state") }}</th><th>{{ t("lm_charged") }}</th><th></th></tr>
{%- for a in rows -%}
<tr><td>{{ a.lesson }}</td><td>{{ a.status }}</td><td>{{ a.charged }}</td><td>
{%- if !a.options.is_empty() -%}
<form method=post action=/app/attendance/correct class=correct-form><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=student value="{{ id }}"><input type=hidden name=lesson_id value="{{ a.lesson_id }}"><select name=status>
{%- for (v, label) in a.options -%}<option value="{{ v }}">{{ label }}</option>{%- endfor -%}
</select> <input name=reason required maxlength=500 placeholder="{{ t("lm_reason") }}"> <button>{{ t("lm_correct") }}</button></form>
{%- endif -%}
</td></tr>
{%- endfor -%}
</table></div>"#
)]
struct AttendancePage<'a> {
    lang: Lang,
    csrf: &'a str,
    id: &'a str,
    id_q: String,
    name: &'a str,
    done: Option<String>,
    rows: Vec<AttendanceRow>,
}

words_in_lang_field!(AttendancePage<'_>);

#[derive(Deserialize, Default)]
pub(super) struct DoneQ {
    done: Option<String>,
}

/// The statuses a correction may set.
const STATUSES: [AttendanceStatus; 5] = [
    AttendanceStatus::Present,
    AttendanceStatus::Late,
    AttendanceStatus::LeftEarly,
    AttendanceStatus::Absent,
    AttendanceStatus::Excused,
];

/// A student's attendance of the last [`BACK_DAYS`] days: status and charge per lesson, and a
/// correction form on the lessons the reader may correct (started, their campus, a teacher's
/// own).
pub(super) async fn attendance_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
    Query(q): Query<DoneQ>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(&st, &staff, &id).await?;
    let now = st.store.now();
    let lines = st
        .store
        .attendance_lines(&id, now - Duration::days(BACK_DAYS), now)
        .await?;
    let rows = lines
        .into_iter()
        .filter(|a| staff.allows_campus(&a.lesson.campus_id))
        .map(|a| {
            let may = v1::may_correct(&staff, &a.lesson.teacher);
            AttendanceRow {
                lesson: lesson_label(&st, &a.lesson),
                status: t(lang, a.status.map_or("not_yet", |s| s.as_str())),
                charged: format!("{:.2}", a.charged as f64 / 100.0),
                options: if may {
                    STATUSES
                        .iter()
                        .filter(|x| Some(**x) != a.status)
                        .map(|x| (x.as_str(), t(lang, x.as_str())))
                        .collect()
                } else {
                    Vec::new()
                },
                lesson_id: a.lesson.id,
            }
        })
        .collect();
    let done = q
        .done
        .as_deref()
        .filter(|d| *d == "corrected")
        .map(|_| t(lang, "lm_done_corrected").to_string());
    let body = AttendancePage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        id: &id,
        id_q: url(&id),
        name: &s.name,
        done,
        rows,
    };
    let title = format!("{} · {}", s.name, t(lang, "lm_attendance_history"));
    page_keeping(lang, &staff, &title, body, &[])
}

#[derive(Deserialize)]
pub(super) struct CorrectForm {
    #[serde(default)]
    _csrf: String,
    student: Option<String>,
    lesson_id: Option<String>,
    status: Option<String>,
    reason: Option<String>,
}

pub(super) async fn correct_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<CorrectForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let student = required(&f.student, "student")?;
    let lesson = required(&f.lesson_id, "lesson_id")?;
    let status = required(&f.status, "status")?;
    let status = AttendanceStatus::parse(status).ok_or_else(|| {
        ApiError::invalid(format!(
            "status {status:?}: expected present, late, left_early, absent or excused"
        ))
    })?;
    let c = v1::Correct {
        status,
        reason: required(&f.reason, "lm_reason")?.to_string(),
    };
    v1::correct_for(&st, &staff, lesson, student, &c).await?;
    Ok(Redirect::to(&format!(
        "/app/students/{}/attendance?done=corrected",
        url(student)
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word these pages show (and the student page's links to them) is in both
    /// languages.
    #[test]
    fn every_word_of_these_pages_is_in_both_languages() {
        let src = include_str!("leave.rs");
        let mut keys: Vec<&str> = src
            .split('"')
            .filter(|k| {
                k.len() > 3
                    && k.starts_with("lm_")
                    && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
            .collect();
        keys.extend(["lm_correct_link", "state", "show_day", "not_yet", "absent"]);
        assert!(keys.len() > 40, "{keys:?}");
        for k in keys {
            for l in [Lang::En, Lang::Zh] {
                assert_ne!(t(l, k), "?", "{k} in {l:?}");
            }
            assert_ne!(t(Lang::En, k), t(Lang::Zh, k), "{k}: not translated");
        }
    }
}
