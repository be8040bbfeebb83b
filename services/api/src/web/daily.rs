//! The front desk's daily lists (who has not arrived yet for the lessons running now or
//! starting within the hour, with the guardians' phones; who should renew) and the teacher's
//! day (my lessons today: roster, who is in, who is missing, and the roll call that marks a
//! student present by hand).

use super::layout::page_keeping;
use super::{check_csrf, local, t, url, words_in_lang_field, Lang, Opt, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::Duration;
use serde::Deserialize;
use std::collections::HashMap;

/// A guardian's name and phone (and WeChat id) as shown on the lists.
struct Reach {
    name: String,
    phone: String,
    wechat: String,
}

fn reach(c: &[v1::Contact]) -> Vec<Reach> {
    c.iter()
        .map(|g| Reach {
            name: g.name.clone(),
            phone: g.phone.clone().unwrap_or_default(),
            wechat: g.wechat_id.clone().unwrap_or_default(),
        })
        .collect()
}

/// A student of the call list.
struct Call {
    /// Local "HH:MM–HH:MM".
    time: String,
    class: String,
    campus: String,
    student_id: String,
    student: String,
    guardians: Vec<Reach>,
}

/// A student of the renewal list.
struct Renew {
    student_id: String,
    student: String,
    available: String,
    low: bool,
    /// "package: lessons left, local expiry date".
    expiring: Vec<String>,
    guardians: Vec<Reach>,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card><form method=get action=/app/daily><select name=campus><option value="">{{ t("any_campus") }}</option>
{%- for o in campuses -%}
<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>
{%- endfor -%}
</select><button>{{ t("show_day") }}</button></form></div>
<div class=card id=call-list><h2>{{ t("call_list") }}</h2><p>{{ t("call_list_help") }}</p>
{%- if calls.is_empty() -%}
<p class=ok>{{ t("nobody_missing") }}</p>
{%- else -%}
<table><tr><th>{{ t("time") }}</th><th>{{ t("class") }}</th><th>{{ t("home_campus") }}</th><th>{{ t("name") }}</th><th>{{ t("guardians") }}</th></tr>
{%- for c in calls -%}
<tr><td>{{ c.time }}</td><td>{{ c.class }}</td><td>{{ c.campus }}</td><td><a href="/app/students/{{ c.student_id }}">{{ c.student }}</a></td><td>
{%- for g in c.guardians -%}
<div>{{ g.name }} {% if !g.phone.is_empty() %}<a href="tel:{{ g.phone }}">{{ g.phone }}</a>{% endif %}{% if !g.wechat.is_empty() %} · {{ t("wechat_id") }} {{ g.wechat }}{% endif %}</div>
{%- endfor -%}
</td></tr>
{%- endfor -%}
</table>
{%- endif -%}
</div>
{%- if let Some(rs) = renewals -%}
<div class=card id=renewals><h2>{{ t("renewal_list") }}</h2><p>{{ renewal_help }}</p><table><tr><th>{{ t("name") }}</th><th>{{ t("balance") }}</th><th>{{ t("expiring_package") }}</th><th>{{ t("guardians") }}</th></tr>
{%- for r in rs -%}
<tr><td><a href="/app/students/{{ r.student_id }}">{{ r.student }}</a></td><td{% if r.low %} class=err{% endif %}>{{ r.available }}</td><td>
{%- for e in r.expiring -%}
<div>{{ e }}</div>
{%- endfor -%}
</td><td>
{%- for g in r.guardians -%}
<div>{{ g.name }} {% if !g.phone.is_empty() %}<a href="tel:{{ g.phone }}">{{ g.phone }}</a>{% endif %}</div>
{%- endfor -%}
</td></tr>
{%- endfor -%}
</table></div>
{%- endif -%}"#
)]
struct DailyPage {
    lang: Lang,
    campuses: Vec<Opt>,
    calls: Vec<Call>,
    /// For the roles that sell (front desk, managers, admins).
    renewals: Option<Vec<Renew>>,
    renewal_help: String,
}

words_in_lang_field!(DailyPage);

pub(super) async fn daily_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<v1::CampusQuery>,
) -> Result<Html<String>, ApiError> {
    let all = st.store.campuses().await?;
    let names: HashMap<String, String> = all.iter().cloned().collect();
    let hm = |t: chrono::DateTime<chrono::Utc>| local(&st, t).format("%H:%M").to_string();
    let calls = v1::call_list_for(&st, &staff, &q.campus)
        .await?
        .entries
        .into_iter()
        .map(|c| Call {
            time: format!("{}–{}", hm(c.start), hm(c.end)),
            class: c.class_name,
            campus: names.get(&c.campus_id).cloned().unwrap_or(c.campus_id),
            guardians: reach(&c.guardians),
            student_id: c.student_id,
            student: c.student_name,
        })
        .collect();
    let policy = st.store.policy().alerts;
    let renewals = if staff.require(roles::ENROLL).is_ok() {
        Some(
            v1::renewals_for(&st, &staff, &q.campus)
                .await?
                .entries
                .into_iter()
                .map(|r| Renew {
                    expiring: r
                        .expiring
                        .iter()
                        .map(|p| {
                            format!(
                                "{}: {} · {}",
                                p.package_id,
                                p.balance,
                                local(&st, p.expires_at).format("%Y-%m-%d")
                            )
                        })
                        .collect(),
                    guardians: reach(&r.guardians),
                    student_id: r.student_id,
                    student: r.student_name,
                    available: r.available,
                    low: r.low_balance,
                })
                .collect(),
        )
    } else {
        None
    };
    let body = DailyPage {
        lang,
        campuses: all
            .into_iter()
            .filter(|(c, _)| staff.allows_campus(c))
            .map(|(c, n)| {
                let on = q.campus.as_deref() == Some(c.as_str());
                Opt::new(c, n, on)
            })
            .collect(),
        calls,
        renewals,
        renewal_help: t(lang, "renewal_help")
            .replace(
                "{lessons}",
                &format!("{:.2}", policy.low_balance_units as f64 / 100.0),
            )
            .replace("{days}", &policy.expiry_warning_days.to_string()),
    };
    let keep: Vec<(&'static str, String)> =
        q.campus.iter().map(|c| ("home_campus", url(c))).collect();
    page_keeping(lang, &staff, t(lang, "daily"), body, &keep)
}

/// A student of a lesson's roster on the teacher's page.
struct Pupil {
    id: String,
    name: String,
    /// `present`, `late`, … or `not_yet` (the chip's class).
    status: String,
    word: &'static str,
    /// Local "HH:MM" of the check-in.
    at: String,
}

/// A lesson of the teacher's day.
struct Taught {
    id: String,
    time: String,
    class: String,
    campus: String,
    /// "3 in · 1 missing" in the reader's words.
    summary: String,
    /// Whether the roll call is open now (an hour before the start to the end).
    open: bool,
    roster: Vec<Pupil>,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{%- if let Some(d) = done -%}
<p class='card ok' id=done>{{ d }}</p>
{%- endif -%}
<div class=card><form method=get action=/app/teaching><input type=date name=date value="{{ date }}">
{%- if may_pick -%}
<input name=teacher value="{{ teacher }}" maxlength=100 placeholder="{{ t("teacher") }}">
{%- endif -%}
<button>{{ t("show_day") }}</button></form><p>{{ t("teacher") }}: {{ teacher }}</p></div>
{%- if lessons.is_empty() -%}
<p class=card>{{ t("no_lessons") }}</p>
{%- endif -%}
{%- for l in lessons -%}
<div class=card id="lesson-{{ l.id }}"><h2>{{ l.time }} · {{ l.class }} · {{ l.campus }}</h2><p>{{ l.summary }}</p><table>
{%- for p in l.roster -%}
<tr><td>{{ p.name }}</td><td><span class="chip {{ p.status }}">{{ p.word }}</span> {{ p.at }}</td><td>
{%- if l.open && p.status == "not_yet" -%}
<form method=post action="/app/lessons/{{ l.id }}/roll-call"><input type=hidden name=_csrf value="{{ csrf }}"><input type=hidden name=student value="{{ p.id }}"><button>{{ t("mark_present") }}</button></form>
{%- endif -%}
</td></tr>
{%- endfor -%}
</table></div>
{%- endfor -%}"#
)]
struct TeachingPage<'a> {
    lang: Lang,
    csrf: &'a str,
    done: Option<String>,
    date: String,
    teacher: String,
    /// Roles other than teacher may look at another teacher's day.
    may_pick: bool,
    lessons: Vec<Taught>,
}

words_in_lang_field!(TeachingPage<'_>);

#[derive(Deserialize, Default)]
pub(super) struct TeachingQ {
    date: Option<String>,
    teacher: Option<String>,
    done: Option<String>,
    student: Option<String>,
    lesson: Option<String>,
}

pub(super) async fn teaching_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(q): Query<TeachingQ>,
) -> Result<Html<String>, ApiError> {
    let day = v1::teacher_day_for(
        &st,
        &staff,
        &v1::TeacherQuery {
            teacher: q.teacher.clone(),
            date: q.date.clone(),
        },
    )
    .await?;
    let names: HashMap<String, String> = st.store.campuses().await?.into_iter().collect();
    let now = st.store.now();
    let hm = |t: chrono::DateTime<chrono::Utc>| local(&st, t).format("%H:%M").to_string();
    let lessons: Vec<Taught> = day
        .lessons
        .iter()
        .map(|l| {
            let n = |k: &str| l.counts.get(k).copied().unwrap_or(0);
            let arrived = n("present") + n("late") + n("left_early");
            Taught {
                id: l.lesson.id.clone(),
                time: format!("{}–{}", hm(l.lesson.start), hm(l.lesson.end)),
                class: l.lesson.class_name.clone(),
                campus: names
                    .get(&l.lesson.campus_id)
                    .cloned()
                    .unwrap_or_else(|| l.lesson.campus_id.clone()),
                summary: t(lang, "in_missing")
                    .replace("{in}", &arrived.to_string())
                    .replace("{missing}", &n("not_yet").to_string()),
                open: now >= l.lesson.start - Duration::minutes(v1::ROLL_CALL_EARLY_MINUTES)
                    && now <= l.lesson.end,
                roster: l
                    .students
                    .iter()
                    .map(|s| Pupil {
                        id: s.student_id.clone(),
                        name: s.name.clone(),
                        word: t(lang, &s.status),
                        status: s.status.clone(),
                        at: s.at.map(hm).unwrap_or_default(),
                    })
                    .collect(),
            }
        })
        .collect();
    let name_of = |id: &str| {
        day.lessons
            .iter()
            .flat_map(|l| l.students.iter())
            .find(|s| s.student_id == id)
            .map_or_else(|| id.to_string(), |s| s.name.clone())
    };
    let done = match (q.done.as_deref(), q.student.as_deref()) {
        (Some(kind), Some(s)) => {
            let key = if kind == "marked" {
                "done_marked"
            } else {
                "done_not_this_lesson"
            };
            Some(
                t(lang, key)
                    .replace("{student}", &name_of(s))
                    .replace("{lesson}", q.lesson.as_deref().unwrap_or_default()),
            )
        }
        _ => None,
    };
    let date = local(&st, day.from).format("%Y-%m-%d").to_string();
    let body = TeachingPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        done,
        date: date.clone(),
        may_pick: staff.role() != rollcall_ledger::Role::Teacher,
        teacher: day.teacher.clone(),
        lessons,
    };
    let mut keep = vec![("date", date)];
    keep.extend(q.teacher.as_deref().map(|t| ("teacher", url(t))));
    page_keeping(lang, &staff, t(lang, "teaching"), body, &keep)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct RollCallForm {
    _csrf: String,
    student: String,
}

/// Marks a student of the lesson present (the API's roll call) and goes back to the day.
pub(super) async fn roll_call_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(lesson): Path<String>,
    Form(f): Form<RollCallForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    // the lesson's campus first: nothing about another campus's lessons is told
    let l = st.store.lesson(&lesson).await?;
    staff.campus(&l.campus_id)?;
    let student = f.student.trim();
    if student.is_empty() {
        return Err(ApiError::invalid("student: choose a student of the roster"));
    }
    let r = rollcall_ledger::as_actor(
        staff.actor(),
        v1::roll_call_for(&st, &staff, &lesson, student),
    )
    .await?;
    let kind = if r.for_this_lesson {
        "marked"
    } else {
        "elsewhere"
    };
    let date = local(&st, l.start).format("%Y-%m-%d");
    Ok(Redirect::to(&format!(
        "/app/teaching?date={date}&done={kind}&student={}&lesson={}",
        url(student),
        url(&l.class_name)
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_of_these_pages_is_in_both_languages() {
        for k in [
            "daily",
            "call_list",
            "call_list_help",
            "nobody_missing",
            "time",
            "class",
            "renewal_list",
            "renewal_help",
            "teaching",
            "teacher",
            "in_missing",
            "mark_present",
            "done_marked",
            "done_not_this_lesson",
            "any_campus",
            "expiring_package",
        ] {
            for l in [Lang::En, Lang::Zh] {
                assert_ne!(t(l, k), "?", "{k} in {l:?}");
            }
            assert_ne!(t(Lang::En, k), t(Lang::Zh, k), "{k}: the same in both");
        }
        for k in ["renewal_help"] {
            for l in [Lang::En, Lang::Zh] {
                assert!(t(l, k).contains("{lessons}") && t(l, k).contains("{days}"));
            }
        }
    }
}
