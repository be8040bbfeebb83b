//! Classes and the timetable in the staff app (issue 21 item 6): the week's timetable (local
//! times, cancelled lessons with why), a lesson's page (who is booked; cancel or move it),
//! the classes (create; edit capacity, teacher, room, absence policy; weekly series with an end
//! date; 1-on-1 slots; transfer a student) and the school's holidays. Every form goes through
//! the API's own functions (`v1::timetable::…_for`: role, campus, rules, audit), so the page
//! and the JSON API cannot disagree; a refused form comes back to its page with the field named
//! in the reader's language.

use super::layout::page_keeping;
use super::{check_csrf, local, t, url, words_in_lang_field, Lang, Opt, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1::timetable as tt;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use rollcall_domain::ledger::{Charge, ClassPolicy};
use rollcall_domain::timetable::{local_day, local_instant};
use serde::Deserialize;
use std::collections::HashMap;

/// What the last form did, or why it was refused (the redirect after a post carries it).
#[derive(Deserialize, Default)]
pub(super) struct Done {
    date: Option<String>,
    done: Option<String>,
    err: Option<String>,
}

/// A form's refusal in the reader's language: the field (by its label on the form) and the
/// check's own words.
fn in_words(lang: Lang, msg: &str) -> String {
    let field = msg
        .strip_prefix("invalid ")
        .unwrap_or(msg)
        .split(':')
        .next()
        .unwrap_or("")
        .trim();
    let label = match field {
        "name" => "name",
        "teacher" => "tt_teacher",
        "room_id" => "tt_room",
        "capacity" => "tt_capacity",
        "weekday" => "tt_weekday",
        "start_time" | "start" => "tt_start",
        "end" | "minutes" => "tt_minutes",
        "first_day" => "tt_first_day",
        "last_day" => "tt_last_day",
        "day" => "tt_day",
        "reason" => "lm_reason",
        "class_id" | "to_class" | "from_class" => "class",
        "id" | "class" => "tt_class_id",
        _ => return format!("{} ({msg})", t(lang, "err_invalid")),
    };
    format!("{}: {} ({msg})", t(lang, label), t(lang, "check_this"))
}

/// A refused form back to `to` with its message; other errors are the app's error page.
fn refused(to: &str, e: ApiError) -> Result<Response, ApiError> {
    if matches!(
        e.status,
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST | StatusCode::CONFLICT
    ) {
        let sep = if to.contains('?') { '&' } else { '?' };
        Ok(Redirect::to(&format!("{to}{sep}err={}", url(&e.message))).into_response())
    } else {
        Err(e)
    }
}

/// The answer to a form: back to `to` saying `what` was done, or why it was refused.
fn settle<T>(r: Result<T, ApiError>, to: &str, what: &str) -> Result<Response, ApiError> {
    match r {
        Ok(_) => Ok(done(to, what)),
        Err(e) => refused(to, e),
    }
}

fn done(to: &str, what: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{sep}done={what}")).into_response()
}

/// The message line of a page: what the last form did, or why it was refused.
fn notice(lang: Lang, q: &Done) -> (Option<String>, Option<String>) {
    let ok = q.done.as_deref().map(|d| {
        t(
            lang,
            match d {
                "created" => "tt_done_created",
                "edited" => "tt_done_edited",
                "series" => "tt_done_series",
                "end" => "tt_done_end",
                "cancelled" => "tt_done_cancelled",
                "moved" => "tt_done_moved",
                "holiday" => "tt_done_holiday",
                "removed" => "tt_done_removed",
                "transferred" => "tt_done_transferred",
                "slot" => "tt_done_slot",
                _ => "lm_done_saved",
            },
        )
        .to_string()
    });
    let err = q.err.as_deref().map(|m| in_words(lang, m));
    (ok, err)
}

fn trimmed(v: &Option<String>) -> &str {
    v.as_deref().map(str::trim).unwrap_or("")
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str, ApiError> {
    match trimmed(v) {
        "" => Err(ApiError::invalid(format!("{name}: required"))),
        s => Ok(s),
    }
}

fn opt(v: &Option<String>) -> Option<String> {
    Some(trimmed(v).to_string()).filter(|s| !s.is_empty())
}

fn day_of(v: &Option<String>, name: &str) -> Result<NaiveDate, ApiError> {
    let s = required(v, name)?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ApiError::invalid(format!("{name}: {s:?} is not a date (YYYY-MM-DD)")))
}

fn time_of(v: &Option<String>, name: &str) -> Result<NaiveTime, ApiError> {
    let s = required(v, name)?;
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| ApiError::invalid(format!("{name}: {s:?} is not a time (HH:MM)")))
}

fn number<T: std::str::FromStr>(v: &Option<String>, name: &str) -> Result<T, ApiError> {
    let s = required(v, name)?;
    s.parse()
        .map_err(|_| ApiError::invalid(format!("{name}: {s:?} is not a whole number")))
}

/// The school-local instant of a form's date and time.
fn instant(st: &AppState, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    local_instant(day, time, st.store.tz_offset_minutes())
}

fn may_manage(staff: &Staff) -> bool {
    staff.require(roles::MANAGE).is_ok()
}

fn hm(st: &AppState, t: DateTime<Utc>) -> String {
    local(st, t).format("%H:%M").to_string()
}

fn charge_key(c: Charge) -> &'static str {
    match c {
        Charge::Free => "tt_charge_free",
        Charge::Half => "tt_charge_half",
        Charge::Full => "tt_charge_full",
    }
}

fn charge_opts(lang: Lang, now: Charge) -> Vec<Opt> {
    [Charge::Full, Charge::Half, Charge::Free]
        .into_iter()
        .map(|c| Opt::new(c.as_str(), t(lang, charge_key(c)), c == now))
        .collect()
}

fn weekday_opts(lang: Lang) -> Vec<Opt> {
    [
        ("mon", "tt_mon"),
        ("tue", "tt_tue"),
        ("wed", "tt_wed"),
        ("thu", "tt_thu"),
        ("fri", "tt_fri"),
        ("sat", "tt_sat"),
        ("sun", "tt_sun"),
    ]
    .into_iter()
    .map(|(v, k)| Opt::new(v, t(lang, k), false))
    .collect()
}

fn weekday_key(w: &str) -> &'static str {
    match w {
        "mon" => "tt_mon",
        "tue" => "tt_tue",
        "wed" => "tt_wed",
        "thu" => "tt_thu",
        "fri" => "tt_fri",
        "sat" => "tt_sat",
        _ => "tt_sun",
    }
}

/// Rooms of `campus` (or every campus the reader reaches) as options, `now` selected.
async fn room_opts(
    st: &AppState,
    staff: &Staff,
    campus: Option<&str>,
    now: Option<&str>,
) -> Result<Vec<Opt>, ApiError> {
    Ok(st
        .store
        .rooms()
        .await?
        .into_iter()
        .filter(|(_, c, _)| staff.allows_campus(c) && campus.is_none_or(|x| x == c))
        .map(|(id, _, name)| {
            let sel = now == Some(id.as_str());
            Opt::new(id, name, sel)
        })
        .collect())
}

// ---- the week ----

struct DayCol {
    title: String,
    lessons: Vec<WeekLesson>,
}

struct WeekLesson {
    id_q: String,
    time: String,
    class: String,
    room: String,
    teacher: String,
    /// Empty: on the timetable; else why it was cancelled.
    cancelled: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = ok -%}<p class='card ok' id=done>{{ d }}</p>{%- endif -%}
<div class=card><p><a href="/app/timetable?date={{ prev }}">{{ t("tt_prev_week") }}</a> · <a href="/app/timetable">{{ t("tt_this_week") }}</a> · <a href="/app/timetable?date={{ next }}">{{ t("tt_next_week") }}</a> · <a href=/app/classes>{{ t("tt_classes") }}</a> · <a href=/app/holidays>{{ t("tt_holidays") }}</a></p>
<form method=get action=/app/timetable><input type=date name=date value="{{ date }}"><button>{{ t("show_day") }}</button></form></div>
<div class=card id=week>
{%- for d in days -%}
<h3>{{ d.title }}</h3>
{%- if d.lessons.is_empty() -%}<p>{{ t("no_lessons") }}</p>{%- else -%}
<table>
{%- for l in d.lessons -%}
<tr{% if !l.cancelled.is_empty() %} class=cancelled{% endif %}><td>{{ l.time }}</td><td>{% if l.cancelled.is_empty() %}<a href="/app/lessons/{{ l.id_q }}">{{ l.class }}</a>{% else %}<s>{{ l.class }}</s> · {{ t("tt_cancelled") }}: {{ l.cancelled }}{% endif %}</td><td>{{ l.room }}</td><td>{{ l.teacher }}</td></tr>
{%- endfor -%}
</table>
{%- endif -%}
{%- endfor -%}
</div>"#
)]
struct WeekPage {
    lang: Lang,
    ok: Option<String>,
    date: String,
    prev: String,
    next: String,
    days: Vec<DayCol>,
}

words_in_lang_field!(WeekPage);

pub(super) async fn week_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<Done>,
) -> Result<Html<String>, ApiError> {
    let off = st.store.tz_offset_minutes();
    let today = local_day(st.store.now(), off);
    let day = match q.date.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|_| ApiError::invalid(format!("date {d:?}: expected YYYY-MM-DD")))?,
        None => today,
    };
    let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
    let from = local_instant(monday, NaiveTime::MIN, off);
    let to = from + Duration::days(7);
    let rooms: HashMap<String, String> = st
        .store
        .rooms()
        .await?
        .into_iter()
        .map(|(id, _, n)| (id, n))
        .collect();
    let room = |r: &Option<String>| {
        r.as_ref()
            .map(|r| rooms.get(r).cloned().unwrap_or(r.clone()))
            .unwrap_or_default()
    };
    let classes: HashMap<String, String> = st
        .store
        .classes()
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let mut days: Vec<DayCol> = (0..7)
        .map(|i| {
            let d = monday + Duration::days(i);
            DayCol {
                title: format!(
                    "{} {}",
                    t(
                        lang,
                        weekday_key(&d.format("%a").to_string().to_lowercase())
                    ),
                    d.format("%Y-%m-%d")
                ),
                lessons: Vec::new(),
            }
        })
        .collect();
    let index = |s: DateTime<Utc>| (local_day(s, off) - monday).num_days().clamp(0, 6) as usize;
    let mut all: Vec<(DateTime<Utc>, usize, WeekLesson)> = Vec::new();
    for l in st.store.lessons_between(from, to).await? {
        if !staff.allows_campus(&l.campus_id) {
            continue;
        }
        all.push((
            l.start,
            index(l.start),
            WeekLesson {
                id_q: url(&l.id),
                time: format!("{}–{}", hm(&st, l.start), hm(&st, l.end)),
                class: l.class_name,
                room: room(&l.room_id),
                teacher: l.teacher,
                cancelled: String::new(),
            },
        ));
    }
    for l in st.store.cancelled_lessons(from, to).await? {
        if !staff.allows_campus(&l.campus_id) {
            continue;
        }
        all.push((
            l.start,
            index(l.start),
            WeekLesson {
                id_q: url(&l.id),
                time: format!("{}–{}", hm(&st, l.start), hm(&st, l.end)),
                class: classes.get(&l.class_id).cloned().unwrap_or(l.class_id),
                room: String::new(),
                teacher: l.teacher,
                cancelled: l.reason,
            },
        ));
    }
    all.sort_by_key(|(s, _, _)| *s);
    for (_, i, l) in all {
        days[i].lessons.push(l);
    }
    let (ok, _) = notice(lang, &q);
    let body = WeekPage {
        lang,
        ok,
        date: day.to_string(),
        prev: (monday - Duration::days(7)).to_string(),
        next: (monday + Duration::days(7)).to_string(),
        days,
    };
    page_keeping(
        lang,
        &staff,
        t(lang, "tt_timetable"),
        body,
        &[("date", day.to_string())],
    )
}

// ---- one lesson ----

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = ok -%}<p class='card ok' id=done>{{ d }}</p>{%- endif -%}
{%- if let Some(e) = err -%}<p class='card err' id=form-error>{{ e }}</p>{%- endif -%}
<div class=card id=lesson><p>{{ when }} · {{ room }} · {{ teacher }}</p><p><a href="/app/classes/{{ class_q }}">{{ class_name }}</a> · <a href="/app/timetable?date={{ date }}">{{ t("tt_timetable") }}</a> · <a href="/app?date={{ date }}">{{ t("board") }}</a></p>
<h3>{{ t("tt_booked") }}</h3><ul>
{%- for s in students -%}<li><a href="/app/students/{{ s.0 }}">{{ s.1 }}</a> · {{ s.2 }}</li>{%- endfor -%}
</ul></div>
{%- if may_change -%}
<div class=card id=move><h2>{{ t("tt_move") }}</h2><p>{{ t("tt_move_help") }}</p><form method=post action="/app/lessons/{{ id_q }}/move"><input type=hidden name=_csrf value="{{ csrf }}">
<label>{{ t("tt_day") }} <input type=date name=day required value="{{ date }}"></label> <label>{{ t("tt_start") }} <input type=time name=start required value="{{ start }}"></label> <label>{{ t("tt_end") }} <input type=time name=end required value="{{ end }}"></label>
<label>{{ t("tt_room") }} <select name=room_id><option value="">{{ t("tt_same_room") }}</option>{% for o in rooms %}<option value="{{ o.value }}">{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_teacher") }} <input name=teacher maxlength=200 placeholder="{{ teacher }}"></label>
<label>{{ t("lm_reason") }} <input name=reason required maxlength=500></label> <button>{{ t("tt_move_button") }}</button></form></div>
<div class=card id=cancel><h2>{{ t("tt_cancel") }}</h2><p>{{ t("tt_cancel_help") }}</p><form method=post action="/app/lessons/{{ id_q }}/cancel" onsubmit="return confirm(this.dataset.ask)" data-ask="{{ t("tt_cancel_confirm") }}"><input type=hidden name=_csrf value="{{ csrf }}"><label>{{ t("lm_reason") }} <input name=reason required maxlength=500></label> <button class=alt>{{ t("tt_cancel_button") }}</button></form></div>
{%- else if locked -%}
<p class=card>{{ t("tt_locked") }}</p>
{%- endif -%}"#
)]
struct LessonPage<'a> {
    lang: Lang,
    csrf: &'a str,
    ok: Option<String>,
    err: Option<String>,
    id_q: String,
    class_q: String,
    class_name: String,
    when: String,
    date: String,
    start: String,
    end: String,
    room: String,
    teacher: String,
    /// (id for a path, name, status in words)
    students: Vec<(String, String, &'static str)>,
    rooms: Vec<Opt>,
    may_change: bool,
    locked: bool,
}

words_in_lang_field!(LessonPage<'_>);

pub(super) async fn lesson_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Result<Html<String>, ApiError> {
    let l = match st.store.lesson(&id).await {
        Err(rollcall_ledger::LedgerError::NotFound { .. }) => {
            return Err(ApiError::not_found(format!("unknown lesson {id:?}")))
        }
        r => r?,
    };
    staff.campus(&l.campus_id)?;
    let off = st.store.tz_offset_minutes();
    let day = local_day(l.start, off);
    let from = local_instant(day, NaiveTime::MIN, off);
    let board = st.store.board(from, from + Duration::days(1)).await?;
    let students = board
        .into_iter()
        .find(|b| b.lesson.id == l.id)
        .map(|b| {
            b.students
                .into_iter()
                .map(|s| {
                    let status = t(lang, s.status.as_str());
                    (url(&s.student_id), s.name, status)
                })
                .collect()
        })
        .unwrap_or_default();
    let rooms: HashMap<String, String> = st
        .store
        .rooms()
        .await?
        .into_iter()
        .map(|(id, _, n)| (id, n))
        .collect();
    let started = l.start <= st.store.now();
    let locked = l.finalized || started;
    let (ok, err) = notice(lang, &q);
    let body = LessonPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        ok,
        err,
        id_q: url(&l.id),
        class_q: url(&l.class_id),
        class_name: l.class_name.clone(),
        when: format!(
            "{}–{}",
            local(&st, l.start).format("%Y-%m-%d %H:%M"),
            hm(&st, l.end)
        ),
        date: day.to_string(),
        start: hm(&st, l.start),
        end: hm(&st, l.end),
        room: l
            .room_id
            .as_ref()
            .map(|r| rooms.get(r).cloned().unwrap_or(r.clone()))
            .unwrap_or_default(),
        teacher: l.teacher.clone(),
        students,
        rooms: room_opts(&st, &staff, Some(&l.campus_id), None).await?,
        may_change: may_manage(&staff) && !locked,
        locked: may_manage(&staff) && locked,
    };
    page_keeping(
        lang,
        &staff,
        &format!("{} · {}", t(lang, "tt_lesson"), l.class_name),
        body,
        &[],
    )
}

#[derive(Deserialize)]
pub(super) struct CancelForm {
    #[serde(default)]
    _csrf: String,
    reason: Option<String>,
}

pub(super) async fn cancel_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<CancelForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let back = format!("/app/lessons/{}", url(&id));
    let l = tt::lesson_in_scope(&st, &staff, &id).await?;
    let c = tt::CancelLesson {
        reason: trimmed(&f.reason).to_string(),
    };
    match tt::cancel_lesson_for(&st, &staff, &id, &c).await {
        Ok(_) => {
            let date = local_day(l.start, st.store.tz_offset_minutes());
            Ok(done(&format!("/app/timetable?date={date}"), "cancelled"))
        }
        Err(e) => refused(&back, e),
    }
}

#[derive(Deserialize)]
pub(super) struct MoveForm {
    #[serde(default)]
    _csrf: String,
    day: Option<String>,
    start: Option<String>,
    end: Option<String>,
    room_id: Option<String>,
    teacher: Option<String>,
    reason: Option<String>,
}

pub(super) async fn move_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<MoveForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    tt::lesson_in_scope(&st, &staff, &id).await?;
    let back = format!("/app/lessons/{}", url(&id));
    let r = async {
        let day = day_of(&f.day, "day")?;
        let start = instant(&st, day, time_of(&f.start, "start")?);
        let mut end = instant(&st, day, time_of(&f.end, "end")?);
        if end <= start {
            // a lesson past midnight ends the next day
            end += Duration::days(1);
        }
        let m = tt::MoveLesson {
            start,
            end,
            room_id: opt(&f.room_id),
            teacher: opt(&f.teacher),
            reason: trimmed(&f.reason).to_string(),
        };
        tt::move_lesson_for(&st, &staff, &id, m).await
    }
    .await;
    settle(r, &back, "moved")
}

// ---- classes ----

struct ClassRow {
    id_q: String,
    name: String,
    campus: String,
    teacher: String,
    room: String,
    capacity: String,
    enrolled: usize,
    kind: &'static str,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = ok -%}<p class='card ok' id=done>{{ d }}</p>{%- endif -%}
{%- if let Some(e) = err -%}<p class='card err' id=form-error>{{ e }}</p>{%- endif -%}
<div class=card id=classes><p><a href=/app/timetable>{{ t("tt_timetable") }}</a> · <a href=/app/holidays>{{ t("tt_holidays") }}</a></p><table><tr><th>{{ t("class") }}</th><th>{{ t("home_campus") }}</th><th>{{ t("tt_teacher") }}</th><th>{{ t("tt_room") }}</th><th>{{ t("tt_enrolled") }}</th><th>{{ t("tt_kind") }}</th></tr>
{%- for c in classes -%}
<tr><td><a href="/app/classes/{{ c.id_q }}">{{ c.name }}</a></td><td>{{ c.campus }}</td><td>{{ c.teacher }}</td><td>{{ c.room }}</td><td>{{ c.enrolled }} / {{ c.capacity }}</td><td>{{ c.kind }}</td></tr>
{%- endfor -%}
</table></div>
{%- if may_manage -%}
<div class=card id=new-class><h2>{{ t("tt_new_class") }}</h2><form method=post action=/app/classes><input type=hidden name=_csrf value="{{ csrf }}">
<label>{{ t("tt_class_id") }} <input name=id required maxlength=64 pattern="[A-Za-z0-9_.\-]+"></label> <label>{{ t("name") }} <input name=name required maxlength=200></label> <label>{{ t("tt_course") }} <input name=course required maxlength=200></label>
<label>{{ t("home_campus") }} <select name=campus_id required>{% for o in campuses %}<option value="{{ o.value }}">{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_teacher") }} <input name=teacher required maxlength=200 list=teachers></label>
<label>{{ t("tt_room") }} <select name=room_id><option value="">—</option>{% for o in rooms %}<option value="{{ o.value }}">{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_capacity") }} <input name=capacity type=number min=1 max=500></label>
<label>{{ t("tt_kind") }} <select name=kind><option value=group>{{ t("tt_kind_group") }}</option><option value=one_on_one>{{ t("tt_kind_one") }}</option></select></label>
<button>{{ t("tt_create") }}</button></form>
<datalist id=teachers>{% for x in teachers %}<option value="{{ x }}">{% endfor %}</datalist></div>
{%- endif -%}"#
)]
struct ClassesPage<'a> {
    lang: Lang,
    csrf: &'a str,
    ok: Option<String>,
    err: Option<String>,
    classes: Vec<ClassRow>,
    may_manage: bool,
    campuses: Vec<Opt>,
    rooms: Vec<Opt>,
    teachers: Vec<String>,
}

words_in_lang_field!(ClassesPage<'_>);

async fn teachers(st: &AppState) -> Result<Vec<String>, ApiError> {
    Ok(st
        .store
        .list_staff()
        .await?
        .into_iter()
        .filter(|a| a.role == rollcall_ledger::Role::Teacher)
        .map(|a| a.username)
        .collect())
}

pub(super) async fn classes_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<Done>,
) -> Result<Html<String>, ApiError> {
    let campuses: HashMap<String, String> = st.store.campuses().await?.into_iter().collect();
    let rooms: HashMap<String, String> = st
        .store
        .rooms()
        .await?
        .into_iter()
        .map(|(id, _, n)| (id, n))
        .collect();
    let classes = st
        .store
        .classes()
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.campus_id))
        .map(|c| ClassRow {
            id_q: url(&c.id),
            campus: campuses.get(&c.campus_id).cloned().unwrap_or(c.campus_id),
            teacher: c.teacher,
            room: c
                .room_id
                .map(|r| rooms.get(&r).cloned().unwrap_or(r))
                .unwrap_or_default(),
            capacity: c.capacity.map(|n| n.to_string()).unwrap_or("∞".into()),
            enrolled: c.students.len(),
            kind: t(
                lang,
                if c.kind == "one_on_one" {
                    "tt_kind_one"
                } else {
                    "tt_kind_group"
                },
            ),
            name: c.name,
        })
        .collect();
    let (ok, err) = notice(lang, &q);
    let body = ClassesPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        ok,
        err,
        classes,
        may_manage: may_manage(&staff),
        campuses: campuses
            .iter()
            .filter(|(id, _)| staff.allows_campus(id))
            .map(|(id, n)| Opt::new(id.clone(), n.clone(), false))
            .collect(),
        rooms: room_opts(&st, &staff, None, None).await?,
        teachers: teachers(&st).await?,
    };
    page_keeping(lang, &staff, t(lang, "tt_classes"), body, &[])
}

#[derive(Deserialize)]
pub(super) struct NewClassForm {
    #[serde(default)]
    _csrf: String,
    id: Option<String>,
    name: Option<String>,
    course: Option<String>,
    campus_id: Option<String>,
    teacher: Option<String>,
    room_id: Option<String>,
    capacity: Option<String>,
    kind: Option<String>,
}

pub(super) async fn new_class_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<NewClassForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let r = async {
        let kind = rollcall_ledger::ClassKind::parse(trimmed(&f.kind))
            .unwrap_or(rollcall_ledger::ClassKind::Group);
        let k = rollcall_ledger::NewClass {
            id: required(&f.id, "id")?.to_string(),
            course: required(&f.course, "course")?.to_string(),
            name: required(&f.name, "name")?.to_string(),
            campus_id: required(&f.campus_id, "campus_id")?.to_string(),
            teacher: required(&f.teacher, "teacher")?.to_string(),
            policy: ClassPolicy::default(),
            capacity: match trimmed(&f.capacity) {
                "" => None,
                _ => Some(number(&f.capacity, "capacity")?),
            },
            room_id: opt(&f.room_id),
            kind,
        };
        tt::create_class_for(&st, &staff, &k).await?;
        Ok::<_, ApiError>(k.id)
    }
    .await;
    match r {
        Ok(id) => Ok(done(&format!("/app/classes/{}", url(&id)), "created")),
        Err(e) => refused("/app/classes", e),
    }
}

struct SeriesRow {
    id_q: String,
    text: String,
    last_day: String,
}

struct RosterRow {
    id: String,
    id_q: String,
    name: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = ok -%}<p class='card ok' id=done>{{ d }}</p>{%- endif -%}
{%- if let Some(e) = err -%}<p class='card err' id=form-error>{{ e }}</p>{%- endif -%}
<div class=card id=class><p>{{ campus }} · {{ kind }} · {{ t("tt_enrolled") }} {{ roster.len() }} / {{ capacity_text }}</p><p><a href=/app/classes>{{ t("tt_classes") }}</a> · <a href=/app/timetable>{{ t("tt_timetable") }}</a></p></div>
{%- if may_manage -%}
<div class=card id=edit-class><h2>{{ t("tt_edit_class") }}</h2><form method=post action="/app/classes/{{ id_q }}/edit"><input type=hidden name=_csrf value="{{ csrf }}">
<label>{{ t("name") }} <input name=name required maxlength=200 value="{{ name }}"></label> <label>{{ t("tt_teacher") }} <input name=teacher required maxlength=200 value="{{ teacher }}" list=teachers></label>
<label>{{ t("tt_room") }} <select name=room_id><option value="">—</option>{% for o in rooms %}<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_capacity") }} <input name=capacity type=number min=1 max=500 value="{{ capacity }}"></label>
<fieldset><legend>{{ t("tt_absence_policy") }}</legend>
<label>{{ t("tt_unexcused") }} <select name=unexcused>{% for o in unexcused %}<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_excused") }} <select name=excused>{% for o in excused %}<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_short_notice") }} <select name=short_notice>{% for o in short_notice %}<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_notice_hours") }} <input name=notice_hours type=number min=0 max=720 required value="{{ notice_hours }}"></label></fieldset>
<button>{{ t("lm_save") }}</button></form>
<datalist id=teachers>{% for x in teachers %}<option value="{{ x }}">{% endfor %}</datalist></div>
{%- endif -%}
<div class=card id=series><h2>{{ t("tt_series") }}</h2>
{%- if series.is_empty() -%}<p>{{ t("tt_no_series") }}</p>{%- else -%}
<table>
{%- for s in series -%}
<tr><td>{{ s.text }}</td><td>
{%- if may_manage -%}
<form method=post action="/app/series/{{ s.id_q }}/end" class=inline><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=class value="{{ id }}"><label>{{ t("tt_last_day") }} <input type=date name=last_day required value="{{ s.last_day }}"></label> <input name=reason required maxlength=500 placeholder="{{ t("lm_reason") }}"> <button>{{ t("tt_set_end") }}</button></form>
{%- else -%}{{ s.last_day }}{%- endif -%}
</td></tr>
{%- endfor -%}
</table>
{%- endif -%}
{%- if may_manage -%}
<h3>{{ t("tt_new_series") }}</h3><form method=post action="/app/classes/{{ id_q }}/series" id=new-series><input type=hidden name=_csrf value="{{ csrf }}">
<label>{{ t("tt_weekday") }} <select name=weekday>{% for o in weekdays %}<option value="{{ o.value }}">{{ o.label }}</option>{% endfor %}</select></label>
<label>{{ t("tt_start") }} <input type=time name=start_time required></label> <label>{{ t("tt_minutes") }} <input type=number name=minutes min=10 max=600 required value=90></label>
<label>{{ t("tt_first_day") }} <input type=date name=first_day required></label> <label>{{ t("tt_last_day") }} <input type=date name=last_day required></label>
<button>{{ t("tt_create") }}</button></form>
{%- if one_on_one -%}
<h3>{{ t("tt_new_slot") }}</h3><form method=post action="/app/classes/{{ id_q }}/slots" id=new-slot><input type=hidden name=_csrf value="{{ csrf }}">
<label>{{ t("tt_day") }} <input type=date name=day required></label> <label>{{ t("tt_start") }} <input type=time name=start required></label> <label>{{ t("tt_minutes") }} <input type=number name=minutes min=10 max=600 required value=60></label> <button>{{ t("tt_create") }}</button></form>
{%- endif -%}
{%- endif -%}
</div>
<div class=card id=roster><h2>{{ t("tt_roster") }}</h2><table>
{%- for s in roster -%}
<tr><td><a href="/app/students/{{ s.id_q }}">{{ s.name }}</a></td><td>
{%- if may_manage && !others.is_empty() -%}
<form method=post action="/app/classes/{{ id_q }}/transfer" class=inline><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=student value="{{ s.id }}"><label>{{ t("tt_transfer_to") }} <select name=to_class>{% for o in others %}<option value="{{ o.value }}">{{ o.label }}</option>{% endfor %}</select></label> <input name=reason required maxlength=500 placeholder="{{ t("lm_reason") }}"> <button>{{ t("tt_transfer") }}</button></form>
{%- endif -%}
</td></tr>
{%- endfor -%}
</table></div>"#
)]
struct ClassPage<'a> {
    lang: Lang,
    csrf: &'a str,
    ok: Option<String>,
    err: Option<String>,
    id: String,
    id_q: String,
    name: String,
    teacher: String,
    campus: String,
    kind: &'static str,
    one_on_one: bool,
    capacity: String,
    capacity_text: String,
    rooms: Vec<Opt>,
    unexcused: Vec<Opt>,
    excused: Vec<Opt>,
    short_notice: Vec<Opt>,
    notice_hours: i64,
    teachers: Vec<String>,
    series: Vec<SeriesRow>,
    weekdays: Vec<Opt>,
    roster: Vec<RosterRow>,
    others: Vec<Opt>,
    may_manage: bool,
}

words_in_lang_field!(ClassPage<'_>);

pub(super) async fn class_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
    Query(q): Query<Done>,
) -> Result<Html<String>, ApiError> {
    let classes = st.store.classes().await?;
    let c = classes
        .iter()
        .find(|c| c.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("unknown class {id:?}")))?;
    staff.campus(&c.campus_id)?;
    let campuses: HashMap<String, String> = st.store.campuses().await?.into_iter().collect();
    let students: HashMap<String, String> = st
        .store
        .students()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let series = st
        .store
        .series_of(&id)
        .await?
        .into_iter()
        .map(|s| SeriesRow {
            id_q: url(&s.id),
            text: format!(
                "{} {} · {} {} · {} – {} · {} {}",
                t(lang, weekday_key(&s.weekday)),
                s.start_time,
                s.minutes,
                t(lang, "tt_min"),
                s.first_day,
                s.last_day,
                s.lessons,
                t(lang, "tt_lessons_left")
            ),
            last_day: s.last_day,
        })
        .collect();
    let roster = c
        .students
        .iter()
        .map(|s| RosterRow {
            id: s.clone(),
            id_q: url(s),
            name: students.get(s).cloned().unwrap_or(s.clone()),
        })
        .collect();
    let others = classes
        .iter()
        .filter(|o| o.id != c.id && staff.allows_campus(&o.campus_id))
        .map(|o| Opt::new(o.id.clone(), o.name.clone(), false))
        .collect();
    let one_on_one = c.kind == "one_on_one";
    let (ok, err) = notice(lang, &q);
    let body = ClassPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        ok,
        err,
        id_q: url(&c.id),
        id: c.id.clone(),
        name: c.name.clone(),
        teacher: c.teacher.clone(),
        campus: campuses
            .get(&c.campus_id)
            .cloned()
            .unwrap_or(c.campus_id.clone()),
        kind: t(
            lang,
            if one_on_one {
                "tt_kind_one"
            } else {
                "tt_kind_group"
            },
        ),
        one_on_one,
        capacity: c.capacity.map(|n| n.to_string()).unwrap_or_default(),
        capacity_text: c.capacity.map(|n| n.to_string()).unwrap_or("∞".into()),
        rooms: room_opts(&st, &staff, Some(&c.campus_id), c.room_id.as_deref()).await?,
        unexcused: charge_opts(lang, c.policy.absence.unexcused),
        excused: charge_opts(lang, c.policy.absence.excused),
        short_notice: charge_opts(lang, c.policy.absence.short_notice),
        notice_hours: c.policy.absence.notice_hours,
        teachers: teachers(&st).await?,
        series,
        weekdays: weekday_opts(lang),
        roster,
        others,
        may_manage: may_manage(&staff),
    };
    page_keeping(
        lang,
        &staff,
        &format!("{} · {}", t(lang, "class"), c.name),
        body,
        &[],
    )
}

#[derive(Deserialize)]
pub(super) struct EditClassForm {
    #[serde(default)]
    _csrf: String,
    name: Option<String>,
    teacher: Option<String>,
    room_id: Option<String>,
    capacity: Option<String>,
    unexcused: Option<String>,
    excused: Option<String>,
    short_notice: Option<String>,
    notice_hours: Option<String>,
}

fn charge_of(v: &Option<String>, name: &str) -> Result<Charge, ApiError> {
    Charge::parse(trimmed(v))
        .ok_or_else(|| ApiError::invalid(format!("{name}: free, half or full")))
}

pub(super) async fn edit_class_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<EditClassForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    tt::class_in_scope(&st, &staff, &id).await?;
    let back = format!("/app/classes/{}", url(&id));
    let r = async {
        // the timing rules are not on the form: they stay as they are
        let mut policy = st
            .store
            .classes()
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| c.policy)
            .ok_or_else(|| ApiError::not_found(format!("unknown class {id:?}")))?;
        policy.absence.unexcused = charge_of(&f.unexcused, "unexcused")?;
        policy.absence.excused = charge_of(&f.excused, "excused")?;
        policy.absence.short_notice = charge_of(&f.short_notice, "short_notice")?;
        policy.absence.notice_hours = number(&f.notice_hours, "notice_hours")?;
        if !(0..=720).contains(&policy.absence.notice_hours) {
            return Err(ApiError::invalid("notice_hours: 0 to 720 hours"));
        }
        let e = tt::EditClass {
            name: trimmed(&f.name).to_string(),
            teacher: trimmed(&f.teacher).to_string(),
            room_id: opt(&f.room_id),
            capacity: match trimmed(&f.capacity) {
                "" => None,
                _ => Some(number(&f.capacity, "capacity")?),
            },
            policy,
        };
        tt::edit_class_for(&st, &staff, &id, e).await
    }
    .await;
    settle(r, &back, "edited")
}

#[derive(Deserialize)]
pub(super) struct SeriesForm {
    #[serde(default)]
    _csrf: String,
    weekday: Option<String>,
    start_time: Option<String>,
    minutes: Option<String>,
    first_day: Option<String>,
    last_day: Option<String>,
}

pub(super) async fn series_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<SeriesForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    tt::class_in_scope(&st, &staff, &id).await?;
    let back = format!("/app/classes/{}", url(&id));
    let r = async {
        let s = tt::CreateSeries {
            class_id: id.clone(),
            weekday: required(&f.weekday, "weekday")?.to_string(),
            start_time: required(&f.start_time, "start_time")?.to_string(),
            minutes: number(&f.minutes, "minutes")?,
            first_day: day_of(&f.first_day, "first_day")?,
            last_day: day_of(&f.last_day, "last_day")?,
            room_id: None,
            teacher: None,
        };
        tt::create_series_for(&st, &staff, s).await
    }
    .await;
    settle(r, &back, "series")
}

#[derive(Deserialize)]
pub(super) struct EndForm {
    #[serde(default)]
    _csrf: String,
    class: Option<String>,
    last_day: Option<String>,
    reason: Option<String>,
}

pub(super) async fn series_end_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<EndForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    tt::series_in_scope(&st, &staff, &id).await?;
    let back = format!("/app/classes/{}", url(trimmed(&f.class)));
    let r = async {
        let e = tt::SeriesEnd {
            last_day: day_of(&f.last_day, "last_day")?,
            reason: trimmed(&f.reason).to_string(),
        };
        tt::set_series_end_for(&st, &staff, &id, &e).await
    }
    .await;
    settle(r, &back, "end")
}

#[derive(Deserialize)]
pub(super) struct SlotForm {
    #[serde(default)]
    _csrf: String,
    day: Option<String>,
    start: Option<String>,
    minutes: Option<String>,
}

pub(super) async fn slot_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<SlotForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    tt::class_in_scope(&st, &staff, &id).await?;
    let back = format!("/app/classes/{}", url(&id));
    let r = async {
        let day = day_of(&f.day, "day")?;
        let s = tt::AddSlot {
            start: instant(&st, day, time_of(&f.start, "start")?),
            minutes: number(&f.minutes, "minutes")?,
            room_id: None,
        };
        tt::add_slot_for(&st, &staff, &id, &s).await
    }
    .await;
    settle(r, &back, "slot")
}

#[derive(Deserialize)]
pub(super) struct TransferForm {
    #[serde(default)]
    _csrf: String,
    student: Option<String>,
    to_class: Option<String>,
    reason: Option<String>,
}

pub(super) async fn transfer_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<TransferForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    tt::class_in_scope(&st, &staff, &id).await?;
    let back = format!("/app/classes/{}", url(&id));
    let r = async {
        let student = required(&f.student, "student")?.to_string();
        let t = tt::Transfer {
            from_class: id.clone(),
            to_class: required(&f.to_class, "to_class")?.to_string(),
            reason: trimmed(&f.reason).to_string(),
        };
        tt::transfer_for(&st, &staff, &student, &t).await
    }
    .await;
    match r {
        Ok(t) => Ok(done(
            &format!("/app/classes/{}", url(&t.to_class)),
            "transferred",
        )),
        Err(e) => refused(&back, e),
    }
}

// ---- holidays ----

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(d) = ok -%}<p class='card ok' id=done>{{ d }}</p>{%- endif -%}
{%- if let Some(e) = err -%}<p class='card err' id=form-error>{{ e }}</p>{%- endif -%}
<div class=card id=holidays><p>{{ t("tt_holidays_help") }}</p>
{%- if holidays.is_empty() -%}<p>{{ t("tt_no_holidays") }}</p>{%- else -%}
<table>
{%- for h in holidays -%}
<tr><td>{{ h.0 }}</td><td>{{ h.1 }}</td><td>
{%- if may_change -%}
<form method=post action=/app/holidays/remove class=inline><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=day value="{{ h.0 }}"><button class=alt>{{ t("tt_remove") }}</button></form>
{%- endif -%}
</td></tr>
{%- endfor -%}
</table>
{%- endif -%}
</div>
{%- if may_change -%}
<div class=card id=new-holiday><h2>{{ t("tt_new_holiday") }}</h2><p>{{ t("tt_holiday_cancels") }}</p><form method=post action=/app/holidays onsubmit="return confirm(this.dataset.ask)" data-ask="{{ t("tt_holiday_confirm") }}"><input type=hidden name=_csrf value="{{ csrf }}"><label>{{ t("tt_day") }} <input type=date name=day required></label> <label>{{ t("name") }} <input name=name required maxlength=200></label> <button>{{ t("tt_create") }}</button></form></div>
{%- endif -%}"#
)]
struct HolidaysPage<'a> {
    lang: Lang,
    csrf: &'a str,
    ok: Option<String>,
    err: Option<String>,
    holidays: Vec<(String, String)>,
    may_change: bool,
}

words_in_lang_field!(HolidaysPage<'_>);

pub(super) async fn holidays_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<Done>,
) -> Result<Html<String>, ApiError> {
    let today = local_day(st.store.now(), st.store.tz_offset_minutes());
    let holidays = st
        .store
        .holidays(today)
        .await?
        .into_iter()
        .map(|h| (h.day, h.name))
        .collect();
    let (ok, err) = notice(lang, &q);
    let body = HolidaysPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        ok,
        err,
        holidays,
        may_change: may_manage(&staff) && staff.is_all_campuses(),
    };
    page_keeping(lang, &staff, t(lang, "tt_holidays"), body, &[])
}

#[derive(Deserialize)]
pub(super) struct HolidayForm {
    #[serde(default)]
    _csrf: String,
    day: Option<String>,
    name: Option<String>,
}

pub(super) async fn holiday_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<HolidayForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let r = async {
        let h = tt::AddHoliday {
            day: day_of(&f.day, "day")?,
            name: trimmed(&f.name).to_string(),
        };
        tt::add_holiday_for(&st, &staff, &h).await
    }
    .await;
    settle(r, "/app/holidays", "holiday")
}

pub(super) async fn holiday_remove_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Form(f): Form<HolidayForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let day = required(&f.day, "day")?;
    settle(
        tt::remove_holiday_for(&st, &staff, day).await,
        "/app/holidays",
        "removed",
    )
}
