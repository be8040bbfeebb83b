//! The finance page: cash received and paid back by day, campus and method; revenue recognised
//! (lessons used × the price paid) by class, teacher and campus; the prepaid liability; the
//! teachers' lessons and pay at the rates typed in; each downloadable as CSV and XLSX (the
//! API's routes, which the page's session may read).

use super::layout::page_keeping;
use super::sales::{money, parse_money};
use super::{t, url, words_in_lang_field, Lang, Words};
use crate::auth::Staff;
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::Extension;
use chrono::Duration;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub(super) struct FinanceForm {
    from: Option<String>,
    to: Option<String>,
    per_lesson: Option<String>,
    per_student: Option<String>,
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
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<form class='card noprint' method=get action=/app/finance id=range>
<label>{{ t("range_from") }} <input type=date name=from value="{{ from }}"></label>
<label>{{ t("range_to") }} <input type=date name=to value="{{ to }}"></label>
<label>{{ t("per_lesson") }} <input name=per_lesson value="{{ per_lesson }}" inputmode=decimal size=8></label>
<label>{{ t("per_student") }} <input name=per_student value="{{ per_student }}" inputmode=decimal size=8></label>
<button>{{ t("show_day") }}</button></form>
<div class=card id=cash><h2>{{ t("cash_report") }}</h2><table><tr><th>{{ t("date") }}</th><th>{{ t("campus") }}</th><th>{{ t("method") }}</th><th>{{ t("received") }}</th><th>{{ t("refunds") }}</th></tr>
{%- for c in cash -%}<tr><td>{{ c.day }}</td><td>{{ c.campus }}</td><td>{{ t(c.method) }}</td><td>{{ c.received }}</td><td>{{ c.refunded }}</td></tr>{%- endfor -%}
<tr><th colspan=3>{{ t("total") }}</th><th id=received-total>{{ received }}</th><th id=refunded-total>{{ refunded }}</th></tr></table>
<p>{{ t("net") }}: <b id=net>{{ net }}</b> · <a href="/api/v1/reports/finance.csv?part=cash&{{ query }}">CSV</a></p></div>
<div class=card id=revenue><h2>{{ t("revenue_report") }}</h2><table><tr><th></th><th></th><th>{{ t("lessons_paid") }}</th><th>{{ t("revenue") }}</th></tr>
{%- for r in revenue -%}<tr><td>{{ t(r.group) }}</td><td>{{ r.key }}</td><td>{{ r.lessons }}</td><td>{{ r.revenue }}</td></tr>{%- endfor -%}
</table><p>{{ t("liability") }}: <b id=liability>{{ liability }}</b> · <a href="/api/v1/reports/finance.csv?part=revenue&{{ query }}">CSV</a></p></div>
<div class=card id=teaching><h2>{{ t("teacher_pay") }}</h2><table><tr><th>{{ t("teacher") }}</th><th>{{ t("lessons_held") }}</th><th>{{ t("student_lessons") }}</th><th>{{ t("pay") }}</th></tr>
{%- for p in pay -%}<tr><td>{{ p.teacher }}</td><td>{{ p.lessons }}</td><td>{{ p.student_lessons }}</td><td>{{ p.pay }}</td></tr>{%- endfor -%}
</table><p><a href="/api/v1/reports/finance.csv?part=teaching&{{ query }}">CSV</a></p></div>
<p class=noprint><a href="/api/v1/reports/finance.xlsx?{{ query }}">XLSX</a> · <button onclick=window.print()>{{ t("print") }}</button></p>"#
)]
struct FinancePage {
    lang: Lang,
    from: String,
    to: String,
    per_lesson: String,
    per_student: String,
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

words_in_lang_field!(FinancePage);

pub(super) async fn finance_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Query(f): Query<FinanceForm>,
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
    let rate = |field: &str, v: &Option<String>| -> Result<i64, ApiError> {
        match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => parse_money(field, s).map_err(ApiError::invalid),
            None => Ok(0),
        }
    };
    let per_lesson = rate("per_lesson", &f.per_lesson)?;
    let per_student = rate("per_student", &f.per_student)?;
    let q = v1::FinanceQuery {
        from: Some(from.clone()),
        to: Some(to.clone()),
        per_lesson_cents: Some(per_lesson),
        per_student_cents: Some(per_student),
        part: None,
    };
    let r = v1::finance_report(&st, &staff, &q).await?;
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
        })
        .collect();
    let query = format!(
        "from={}&to={}&per_lesson_cents={per_lesson}&per_student_cents={per_student}",
        url(&from),
        url(&to)
    );
    let body = FinancePage {
        lang,
        per_lesson: f.per_lesson.clone().unwrap_or_default(),
        per_student: f.per_student.clone().unwrap_or_default(),
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
    ];
    page_keeping(lang, &staff, t(lang, "finance"), body, &keep)
}
