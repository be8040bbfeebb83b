//! Finance reports: cash received and paid back by day, campus and method; revenue recognised
//! (each lesson used at its paid price) by class, teacher and campus; the prepaid liability
//! (paid and not yet earned); lessons taught per teacher with a pay statement at the rates
//! given. As JSON, CSV (one part at a time) and XLSX (every part, one sheet each).
//! School-wide money: an account of every campus.

use super::{day_bounds, require_all_campuses};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use rollcall_ledger::{CashReport, ConsumptionReport, TeachingRow};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most days one finance report covers.
const MAX_DAYS: i64 = 400;

#[derive(Deserialize)]
pub(crate) struct FinanceQuery {
    /// First local date (default: 30 days ago).
    pub from: Option<String>,
    /// Last local date, included (default: today).
    pub to: Option<String>,
    /// Teacher pay per lesson held, in cents.
    pub per_lesson_cents: Option<i64>,
    /// Teacher pay per student attending, in cents.
    pub per_student_cents: Option<i64>,
    /// CSV: which part (`cash`, `revenue`, `teaching`).
    pub part: Option<String>,
}

/// One teacher's lessons and pay at the report's rates.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TeacherPay {
    pub teacher: String,
    pub lessons: i64,
    pub student_lessons: i64,
    /// lessons × per-lesson rate + student-lessons × per-student rate.
    pub pay_cents: i64,
}

/// The finance report of a range.
#[derive(Serialize, ToSchema)]
pub(crate) struct FinanceReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[schema(value_type = crate::schema::CashReport)]
    pub cash: CashReport,
    #[schema(value_type = crate::schema::ConsumptionReport)]
    pub revenue: ConsumptionReport,
    /// Paid and not yet earned on unexpired packages, now (the outstanding report's total).
    pub prepaid_liability_cents: i64,
    pub per_lesson_cents: i64,
    pub per_student_cents: i64,
    pub teaching: Vec<TeacherPay>,
}

fn rate(field: &str, v: Option<i64>) -> ApiResult<i64> {
    match v.unwrap_or(0) {
        r @ 0..=100_000_000 => Ok(r),
        _ => Err(ApiError::invalid(format!(
            "{field}: between 0 and 100000000 cents"
        ))),
    }
}

/// The report of `q`'s range (local dates, both included) for `staff`.
pub(crate) async fn finance_report(
    st: &AppState,
    staff: &Staff,
    q: &FinanceQuery,
) -> ApiResult<FinanceReport> {
    require_all_campuses(staff)?;
    let (today, tomorrow) = day_bounds(st, None)?;
    let from = match q.from.as_deref().filter(|s| !s.is_empty()) {
        Some(d) => day_bounds(st, Some(d))?.0,
        None => today - Duration::days(30),
    };
    let to = match q.to.as_deref().filter(|s| !s.is_empty()) {
        Some(d) => day_bounds(st, Some(d))?.1,
        None => tomorrow,
    };
    if to <= from || to - from > Duration::days(MAX_DAYS) {
        return Err(ApiError::invalid(format!(
            "from..to: up to {MAX_DAYS} days, from before to"
        )));
    }
    let per_lesson = rate("per_lesson_cents", q.per_lesson_cents)?;
    let per_student = rate("per_student_cents", q.per_student_cents)?;
    let teaching = st
        .store
        .report_teaching(from, to)
        .await?
        .into_iter()
        .map(
            |TeachingRow {
                 teacher,
                 lessons,
                 student_lessons,
             }| TeacherPay {
                pay_cents: lessons * per_lesson + student_lessons * per_student,
                teacher,
                lessons,
                student_lessons,
            },
        )
        .collect();
    let liability = st
        .store
        .report_outstanding(st.store.now())
        .await?
        .iter()
        .map(|r| r.value_cents)
        .sum();
    Ok(FinanceReport {
        from,
        to,
        cash: st.store.report_cash(from, to).await?,
        revenue: st.store.report_consumption(from, to).await?,
        prepaid_liability_cents: liability,
        per_lesson_cents: per_lesson,
        per_student_cents: per_student,
        teaching,
    })
}

pub(super) async fn finance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<FinanceQuery>,
) -> ApiResult<Json<FinanceReport>> {
    Ok(Json(finance_report(&st, &staff, &q).await?))
}

use rollcall_domain::money::fmt_cents as amount;

/// The rows of one part of the report: a header and the lines, as text cells.
fn part_rows(r: &FinanceReport, part: &str) -> ApiResult<Vec<Vec<String>>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    match part {
        "cash" => {
            out.push(
                ["day", "campus", "method", "received", "refunded"]
                    .map(String::from)
                    .to_vec(),
            );
            for c in &r.cash.rows {
                out.push(vec![
                    c.day.to_string(),
                    c.campus_id.clone().unwrap_or_default(),
                    c.method.as_str().to_string(),
                    amount(c.received_cents),
                    amount(c.refunded_cents),
                ]);
            }
        }
        "revenue" => {
            out.push(
                ["group", "key", "lessons", "revenue"]
                    .map(String::from)
                    .to_vec(),
            );
            for (group, rows) in [
                ("class", &r.revenue.per_class),
                ("teacher", &r.revenue.per_teacher),
                ("campus", &r.revenue.per_campus),
            ] {
                for x in rows {
                    out.push(vec![
                        group.to_string(),
                        x.key.clone(),
                        x.lessons.clone(),
                        amount(x.revenue_cents),
                    ]);
                }
            }
            out.push(vec![
                "prepaid_liability".into(),
                String::new(),
                String::new(),
                amount(r.prepaid_liability_cents),
            ]);
        }
        "teaching" => {
            out.push(
                ["teacher", "lessons", "student_lessons", "pay"]
                    .map(String::from)
                    .to_vec(),
            );
            for t in &r.teaching {
                out.push(vec![
                    t.teacher.clone(),
                    t.lessons.to_string(),
                    t.student_lessons.to_string(),
                    amount(t.pay_cents),
                ]);
            }
        }
        p => {
            return Err(ApiError::invalid(format!(
                "part {p:?}: cash, revenue or teaching"
            )))
        }
    }
    Ok(out)
}

pub(super) async fn finance_csv(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<FinanceQuery>,
) -> ApiResult<Response> {
    let part = q.part.clone().unwrap_or_else(|| "cash".into());
    let r = finance_report(&st, &staff, &q).await?;
    let mut body = String::new();
    for row in part_rows(&r, &part)? {
        let cells: Vec<String> = row.iter().map(|c| super::imports::csv_field(c)).collect();
        body.push_str(&cells.join(","));
        body.push_str("\r\n");
    }
    Ok(super::imports::csv_response(
        &format!("finance-{part}.csv"),
        body,
    ))
}

/// The report as an XLSX workbook: one sheet per part, amounts as numbers.
pub(crate) fn finance_xlsx_bytes(r: &FinanceReport) -> ApiResult<Vec<u8>> {
    use rust_xlsxwriter::Workbook;
    let mut wb = Workbook::new();
    let err = |e: rust_xlsxwriter::XlsxError| ApiError::internal(format!("xlsx: {e}"));
    for part in ["cash", "revenue", "teaching"] {
        let rows = part_rows(r, part)?;
        let ws = wb.add_worksheet();
        ws.set_name(part).map_err(err)?;
        for (i, row) in rows.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                let (i, j) = (i as u32, j as u16);
                // amounts and counts as numbers (not in the header row), the rest as text
                match cell.parse::<f64>() {
                    Ok(n) if i > 0 && !cell.is_empty() => ws.write_number(i, j, n).map_err(err)?,
                    _ => ws.write_string(i, j, cell).map_err(err)?,
                };
            }
        }
    }
    wb.save_to_buffer().map_err(err)
}

pub(super) async fn finance_xlsx(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<FinanceQuery>,
) -> ApiResult<Response> {
    let r = finance_report(&st, &staff, &q).await?;
    let bytes = finance_xlsx_bytes(&r)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"finance.xlsx\"".to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}
