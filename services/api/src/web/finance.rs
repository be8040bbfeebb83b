//! The finance page: cash received and paid back by day, campus and method; revenue recognised
//! (lessons used × the price paid) by class, teacher and campus; the prepaid liability; the
//! teachers' lessons and pay at each teacher's stored rates (or, for a what-if, at rates typed
//! in); each downloadable as CSV and XLSX (the API's routes, which the page's session may
//! read). A campus-limited reader sees the figures of their campuses. The teachers' rates are
//! listed below, and an admin of every campus sets them there.

use super::layout::page_keeping;
use super::sales::{money, parse_money};
use super::{check_csrf, t, url, words_in_lang_field, Lang, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::Duration;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize, Default)]
pub(super) struct FinanceForm {
    from: Option<String>,
    to: Option<String>,
    per_lesson: Option<String>,
    per_student: Option<String>,
    campus: Option<String>,
    done: Option<String>,
}

/// A stored rate as listed.
struct RateLine {
    teacher: String,
    from: String,
    per_lesson: String,
    per_student: String,
    set_by: String,
}

/// The rate form's fields (as sent, when it is shown again with an error).
#[derive(Default)]
struct RateFields {
    teacher: String,
    from: String,
    per_lesson: String,
    per_student: String,
}

struct CashLine {
    day: String,
    campus: String,
    method: &'static str,
    received: String,
    refunded: String,
}

struct RevenueLine {
    group: &'static str,
    key: String,
    lessons: String,
    revenue: String,
}

struct PayLine {
    teacher: String,
    lessons: i64,
    student_lessons: i64,
    pay: String,
    /// The stored rates used ("from 2026-03-01: 150.00 + 10.00 per student").
    rates: String,
    unrated: i64,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<form class='card noprint' method=get action=/app/finance id=range>
<label>{{ t("range_from") }} <input type=date name=from value="{{ from }}"></label>
<label>{{ t("range_to") }} <input type=date name=to value="{{ to }}"></label>
{%- if campuses.len() > 1 -%}
<label>{{ t("campus") }} <select name=campus><option value="">{{ t("fin_my_campuses") }}</option>
{%- for o in campuses -%}<option value="{{ o.value }}"{% if o.selected %} selected{% endif %}>{{ o.label }}</option>{%- endfor -%}
</select></label>
{%- endif %}
<label>{{ t("per_lesson") }} <input name=per_lesson value="{{ per_lesson }}" inputmode=decimal size=8 placeholder="{{ t("fin_stored") }}"></label>
<label>{{ t("per_student") }} <input name=per_student value="{{ per_student }}" inputmode=decimal size=8 placeholder="{{ t("fin_stored") }}"></label>
<button>{{ t("show_day") }}</button><p>{{ t("fin_whatif_help") }}</p></form>
{%- if let Some(c) = scope -%}<p class=card id=scope>{{ t("fin_campuses_shown") }} {{ c }}</p>{%- endif -%}
<div class=card id=cash><h2>{{ t("cash_report") }}</h2><table><tr><th>{{ t("date") }}</th><th>{{ t("campus") }}</th><th>{{ t("method") }}</th><th>{{ t("received") }}</th><th>{{ t("refunds") }}</th></tr>
{%- for c in cash -%}<tr><td>{{ c.day }}</td><td>{{ c.campus }}</td><td>{{ t(c.method) }}</td><td>{{ c.received }}</td><td>{{ c.refunded }}</td></tr>{%- endfor -%}
<tr><th colspan=3>{{ t("total") }}</th><th id=received-total>{{ received }}</th><th id=refunded-total>{{ refunded }}</th></tr></table>
<p>{{ t("net") }}: <b id=net>{{ net }}</b> · <a href="/api/v1/reports/finance.csv?part=cash&{{ query }}">CSV</a></p></div>
<div class=card id=revenue><h2>{{ t("revenue_report") }}</h2><table><tr><th></th><th></th><th>{{ t("lessons_paid") }}</th><th>{{ t("revenue") }}</th></tr>
{%- for r in revenue -%}<tr><td>{{ t(r.group) }}</td><td>{{ r.key }}</td><td>{{ r.lessons }}</td><td>{{ r.revenue }}</td></tr>{%- endfor -%}
</table><p>{{ t("liability") }}: <b id=liability>{{ liability }}</b> · <a href="/api/v1/reports/finance.csv?part=revenue&{{ query }}">CSV</a></p></div>
<div class=card id=teaching><h2>{{ t("teacher_pay") }}</h2><p id=pay-basis data-basis="{{ basis }}">{% if basis == "query" %}{{ t("fin_basis_query") }}{% else %}{{ t("fin_basis_stored") }}{% endif %}</p><table><tr><th>{{ t("teacher") }}</th><th>{{ t("lessons_held") }}</th><th>{{ t("student_lessons") }}</th><th>{{ t("pay") }}</th><th>{{ t("fin_rates_used") }}</th></tr>
{%- for p in pay -%}<tr data-teacher="{{ p.teacher }}"><td>{{ p.teacher }}</td><td>{{ p.lessons }}</td><td>{{ p.student_lessons }}</td><td class=pay>{{ p.pay }}</td><td>{{ p.rates }}{% if p.unrated > 0 %} <span class=err>{{ t("fin_unrated") }} {{ p.unrated }}</span>{% endif %}</td></tr>{%- endfor -%}
</table><p><a href="/api/v1/reports/finance.csv?part=teaching&{{ query }}">CSV</a></p></div>
<div class='card noprint' id=rates><h2>{{ t("fin_rates") }}</h2>
{%- if let Some(d) = done -%}<p class=ok id=rate-done>{{ d }}</p>{%- endif -%}
<table><tr><th>{{ t("teacher") }}</th><th>{{ t("fin_effective_from") }}</th><th>{{ t("per_lesson") }}</th><th>{{ t("per_student") }}</th><th>{{ t("changed_by") }}</th></tr>
{%- for r in rates -%}<tr><td>{{ r.teacher }}</td><td>{{ r.from }}</td><td>{{ r.per_lesson }}</td><td>{{ r.per_student }}</td><td>{{ r.set_by }}</td></tr>{%- endfor -%}
</table>
{%- if may_set -%}
{%- if let Some(e) = error -%}<p class='err' id=form-error>{{ e }}</p>{%- endif -%}
<form method=post action=/app/finance/rates id=rate-form><input type=hidden name=_csrf value="{{ csrf }}"><label>{{ t("teacher") }} <input name=teacher value="{{ form.teacher }}" list=teachers required maxlength=64></label><datalist id=teachers>
{%- for x in teachers -%}<option value="{{ x }}">{%- endfor -%}
</datalist> <label>{{ t("fin_effective_from") }} <input type=date name=effective_from value="{{ form.from }}"></label> <label>{{ t("per_lesson") }} <input name=per_lesson value="{{ form.per_lesson }}" inputmode=decimal size=8 required></label> <label>{{ t("per_student") }} <input name=per_student value="{{ form.per_student }}" inputmode=decimal size=8 required></label> <button>{{ t("save") }}</button><p>{{ t("fin_rate_help") }}</p></form>
{%- endif -%}
</div>
<p class=noprint><a href="/api/v1/reports/finance.xlsx?{{ query }}">XLSX</a> · <button onclick=window.print()>{{ t("print") }}</button></p>"#
)]
struct FinancePage<'a> {
    lang: Lang,
    csrf: &'a str,
    from: String,
    to: String,
    per_lesson: String,
    per_student: String,
    /// The reader's campuses to choose one of (shown when more than one).
    campuses: Vec<super::Opt>,
    /// The campuses the figures cover, by name, for a campus-limited reader or a chosen campus.
    scope: Option<String>,
    /// `stored` or `query`.
    basis: &'static str,
    rates: Vec<RateLine>,
    teachers: Vec<String>,
    /// Whether the reader may set rates (an admin of every campus).
    may_set: bool,
    form: RateFields,
    error: Option<String>,
    done: Option<&'static str>,
    /// The report's query for the download links (percent-encoded values).
    query: String,
    cash: Vec<CashLine>,
    received: String,
    refunded: String,
    net: String,
    revenue: Vec<RevenueLine>,
    liability: String,
    pay: Vec<PayLine>,
}

words_in_lang_field!(FinancePage<'_>);

pub(super) async fn finance_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(f): Query<FinanceForm>,
) -> Result<Html<String>, ApiError> {
    render(&st, &staff, lang, f, RateFields::default(), None).await
}

/// The finance page of the query `f`, with the rate form's fields and error.
async fn render(
    st: &AppState,
    staff: &Staff,
    lang: Lang,
    f: FinanceForm,
    form: RateFields,
    error: Option<String>,
) -> Result<Html<String>, ApiError> {
    let today = st.store.local_date(st.store.now());
    let from = f
        .from
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| (today - Duration::days(30)).to_string());
    let to =
        f.to.clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| today.to_string());
    // an empty rate: each teacher's stored rate; a rate typed in: a what-if for everybody
    let rate = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => parse_money(field, s).map(Some).map_err(ApiError::invalid),
            None => Ok(None),
        }
    };
    let per_lesson = rate("per_lesson", &f.per_lesson)?;
    let per_student = rate("per_student", &f.per_student)?;
    let campus = f.campus.clone().filter(|c| !c.trim().is_empty());
    let q = v1::FinanceQuery {
        from: Some(from.clone()),
        to: Some(to.clone()),
        per_lesson_cents: per_lesson,
        per_student_cents: per_student,
        campus: campus.clone(),
        part: None,
    };
    let r = v1::finance_report(st, staff, &q).await?;
    let campuses = st.store.campuses().await?;
    let campus_name = |id: &Option<String>| match id {
        Some(id) => campuses
            .iter()
            .find(|c| &c.0 == id)
            .map_or_else(|| id.clone(), |c| c.1.clone()),
        None => String::new(),
    };
    let cash = r
        .cash
        .rows
        .iter()
        .map(|c| CashLine {
            day: c.day.to_string(),
            campus: campus_name(&c.campus_id),
            method: c.method.as_str(),
            received: money(c.received_cents),
            refunded: money(c.refunded_cents),
        })
        .collect();
    let mut revenue = Vec::new();
    for (group, rows) in [
        ("by_class", &r.revenue.per_class),
        ("by_teacher", &r.revenue.per_teacher),
        ("by_campus", &r.revenue.per_campus),
    ] {
        for x in rows {
            revenue.push(RevenueLine {
                group,
                key: if group == "by_campus" {
                    campus_name(&Some(x.key.clone()))
                } else {
                    x.key.clone()
                },
                lessons: x.lessons.clone(),
                revenue: money(x.revenue_cents),
            });
        }
    }
    let pay = r
        .teaching
        .iter()
        .map(|p| PayLine {
            teacher: p.teacher.clone(),
            lessons: p.lessons,
            student_lessons: p.student_lessons,
            pay: money(p.pay_cents),
            rates: p
                .rates
                .iter()
                .map(|u| {
                    format!(
                        "{} {}: {} + {} × {}",
                        t(lang, "fin_from"),
                        u.effective_from,
                        money(u.per_lesson_cents),
                        u.student_lessons,
                        money(u.per_student_cents)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            unrated: p.unrated_lessons,
        })
        .collect();
    let mut query = format!("from={}&to={}", url(&from), url(&to));
    if let Some(v) = per_lesson {
        query.push_str(&format!("&per_lesson_cents={v}"));
    }
    if let Some(v) = per_student {
        query.push_str(&format!("&per_student_cents={v}"));
    }
    if let Some(c) = &campus {
        query.push_str(&format!("&campus={}", url(c)));
    }
    let scope = r.campuses.as_ref().map(|v| {
        v.iter()
            .map(|c| campus_name(&Some(c.clone())))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let campus_opts = campuses
        .iter()
        .filter(|(id, _)| staff.allows_campus(id))
        .map(|(id, name)| super::Opt::new(id.clone(), name.clone(), campus.as_ref() == Some(id)))
        .collect();
    let may_set = staff.require(roles::ADMIN).is_ok() && staff.is_all_campuses();
    let body = FinancePage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        per_lesson: f.per_lesson.clone().unwrap_or_default(),
        per_student: f.per_student.clone().unwrap_or_default(),
        campuses: campus_opts,
        scope,
        basis: match r.pay_basis {
            v1::PayBasis::Stored => "stored",
            v1::PayBasis::Query => "query",
        },
        rates: st
            .store
            .teacher_rates()
            .await?
            .into_iter()
            .map(|r| RateLine {
                teacher: r.teacher,
                from: r.effective_from.to_string(),
                per_lesson: money(r.per_lesson_cents),
                per_student: money(r.per_student_cents),
                set_by: r.set_by,
            })
            .collect(),
        teachers: if may_set {
            st.store.known_teachers().await?
        } else {
            Vec::new()
        },
        may_set,
        form: RateFields {
            from: if form.from.is_empty() {
                today.to_string()
            } else {
                form.from
            },
            ..form
        },
        error,
        done: (f.done.as_deref() == Some("rate_saved")).then(|| t(lang, "fin_rate_saved")),
        query,
        cash,
        received: money(r.cash.received_cents),
        refunded: money(r.cash.refunded_cents),
        net: money(r.cash.net_cents),
        revenue,
        liability: money(r.prepaid_liability_cents),
        pay,
        from: from.clone(),
        to: to.clone(),
    };
    let keep = [
        ("from", url(&from)),
        ("to", url(&to)),
        ("per_lesson", url(&f.per_lesson.unwrap_or_default())),
        ("per_student", url(&f.per_student.unwrap_or_default())),
        ("campus", url(&campus.unwrap_or_default())),
    ];
    page_keeping(lang, staff, t(lang, "finance"), body, &keep)
}

/// An error of the rate form in the reader's words: which field to fix (and, in English, the
/// server's detail).
fn rate_error(lang: Lang, msg: &str) -> String {
    let field = msg
        .strip_prefix("invalid ")
        .unwrap_or(msg)
        .split(':')
        .next()
        .unwrap_or("")
        .trim();
    let label = match field {
        "teacher" => t(lang, "teacher"),
        "effective_from" => t(lang, "fin_effective_from"),
        "per_lesson" | "per_lesson_cents" => t(lang, "per_lesson"),
        "per_student" | "per_student_cents" => t(lang, "per_student"),
        _ => t(lang, "err_invalid"),
    };
    match lang {
        Lang::En => format!("{label}: {} ({msg})", t(lang, "check_this")),
        Lang::Zh => format!("{label}：{}", t(lang, "check_this")),
    }
}

/// Stores a teacher's rate (an admin of every campus); the page again with what to fix when a
/// field is wrong.
pub(super) async fn rates_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Form(f): Form<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let v = |k: &str| f.get(k).cloned().unwrap_or_default();
    check_csrf(&staff, &v("_csrf"))?;
    let fields = RateFields {
        teacher: v("teacher"),
        from: v("effective_from"),
        per_lesson: v("per_lesson"),
        per_student: v("per_student"),
    };
    let cents = |field: &str, s: &str| parse_money(field, s).map_err(ApiError::invalid);
    let r = match (
        cents("per_lesson", &fields.per_lesson),
        cents("per_student", &fields.per_student),
    ) {
        (Ok(pl), Ok(ps)) => {
            let set = v1::SetRate {
                teacher: fields.teacher.clone(),
                effective_from: Some(fields.from.clone()),
                per_lesson_cents: pl,
                per_student_cents: ps,
            };
            v1::set_rate_for(&st, &staff, &set).await.map(|_| ())
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match r {
        Ok(()) => Ok(Redirect::to("/app/finance?done=rate_saved#rates").into_response()),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let msg = rate_error(lang, &e.message);
            let html = render(&st, &staff, lang, FinanceForm::default(), fields, Some(msg)).await?;
            Ok((e.status, html).into_response())
        }
        Err(e) => Err(e),
    }
}
