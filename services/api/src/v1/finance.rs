//! Finance reports: cash received and paid back by day, campus and method; revenue recognised
//! (each lesson used at its paid price) by class, teacher and campus; the prepaid liability
//! (paid and not yet earned); lessons taught per teacher with a pay statement at each teacher's
//! stored rates (or, for a what-if, at rates given in the query). As JSON, CSV (one part at a
//! time) and XLSX (every part, one sheet each). A campus-limited account sees every part of its
//! campuses only; teacher rates are set by an admin of every campus (audited).

use super::{day_bounds, require_all_campuses, run};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_ledger::{CampusScope, CashReport, ConsumptionReport, TeacherRate, TeachingRow};
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
    /// What-if teacher pay per lesson held, in cents (given: every teacher is paid at the
    /// query's rates instead of their stored ones).
    pub per_lesson_cents: Option<i64>,
    /// What-if teacher pay per student attending, in cents.
    pub per_student_cents: Option<i64>,
    /// One campus of the reader's (default: every campus the reader's account reaches).
    pub campus: Option<String>,
    /// CSV: which part (`cash`, `revenue`, `teaching`).
    pub part: Option<String>,
}

/// A stored rate a pay statement used, and the lessons paid at it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RateUsedDoc {
    pub effective_from: NaiveDate,
    pub per_lesson_cents: i64,
    pub per_student_cents: i64,
    pub lessons: i64,
    pub student_lessons: i64,
    pub pay_cents: i64,
}

/// One teacher's lessons and pay.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TeacherPay {
    pub teacher: String,
    pub lessons: i64,
    pub student_lessons: i64,
    /// The pay on the report's basis (`pay_basis`): at the stored rates, or lessons × the
    /// query's per-lesson rate + student-lessons × its per-student rate.
    pub pay_cents: i64,
    /// The pay at the teacher's stored rates (each lesson at the rate in effect on its local
    /// date), whatever the basis.
    pub stored_pay_cents: i64,
    /// Lessons held before the teacher's first stored rate (nothing paid for them at the
    /// stored rates).
    pub unrated_lessons: i64,
    /// The stored rates used, oldest first.
    pub rates: Vec<RateUsedDoc>,
}

/// Which rates the pay statement is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PayBasis {
    /// Each teacher's stored rates.
    Stored,
    /// The rates given in the query (a what-if).
    Query,
}

/// The finance report of a range.
#[derive(Serialize, ToSchema)]
pub(crate) struct FinanceReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The campuses the figures cover; null: every campus (an account of every campus).
    pub campuses: Option<Vec<String>>,
    #[schema(value_type = crate::schema::CashReport)]
    pub cash: CashReport,
    #[schema(value_type = crate::schema::ConsumptionReport)]
    pub revenue: ConsumptionReport,
    /// Paid and not yet earned on unexpired packages, now (the outstanding report's total).
    pub prepaid_liability_cents: i64,
    /// `stored`: each teacher's stored rates; `query`: the rates given (what-if).
    pub pay_basis: PayBasis,
    /// The query's per-lesson rate (null when the stored rates are used).
    pub per_lesson_cents: Option<i64>,
    /// The query's per-student rate (null when the stored rates are used).
    pub per_student_cents: Option<i64>,
    pub teaching: Vec<TeacherPay>,
}

fn rate(field: &str, v: Option<i64>) -> ApiResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(r @ 0..=rollcall_ledger::MAX_RATE_CENTS) => Ok(Some(r)),
        Some(_) => Err(ApiError::invalid(format!(
            "{field}: between 0 and {} cents",
            rollcall_ledger::MAX_RATE_CENTS
        ))),
    }
}

/// The campuses a report of `staff` covers (`campus`: one of them).
fn report_scope(staff: &Staff, campus: Option<&str>) -> ApiResult<CampusScope> {
    match campus.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => {
            staff.campus(c)?;
            Ok(CampusScope::Only(vec![c.to_string()]))
        }
        None => Ok(staff.account.campuses.clone()),
    }
}

/// The report of `q`'s range (local dates, both included) for `staff`: every part limited to
/// the reader's campuses.
pub(crate) async fn finance_report(
    st: &AppState,
    staff: &Staff,
    q: &FinanceQuery,
) -> ApiResult<FinanceReport> {
    let scope = report_scope(staff, q.campus.as_deref())?;
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
    let basis = if per_lesson.is_some() || per_student.is_some() {
        PayBasis::Query
    } else {
        PayBasis::Stored
    };
    let teaching = st
        .store
        .report_teaching(from, to, &scope)
        .await?
        .into_iter()
        .map(|r: TeachingRow| TeacherPay {
            pay_cents: match basis {
                PayBasis::Stored => r.pay_cents,
                PayBasis::Query => {
                    r.lessons * per_lesson.unwrap_or(0)
                        + r.student_lessons * per_student.unwrap_or(0)
                }
            },
            stored_pay_cents: r.pay_cents,
            unrated_lessons: r.unrated_lessons,
            rates: r
                .rates
                .into_iter()
                .map(|u| RateUsedDoc {
                    effective_from: u.effective_from,
                    per_lesson_cents: u.per_lesson_cents,
                    per_student_cents: u.per_student_cents,
                    lessons: u.lessons,
                    student_lessons: u.student_lessons,
                    pay_cents: u.pay_cents,
                })
                .collect(),
            teacher: r.teacher,
            lessons: r.lessons,
            student_lessons: r.student_lessons,
        })
        .collect();
    let liability = st
        .store
        .report_outstanding_in(st.store.now(), &scope)
        .await?
        .iter()
        .map(|r| r.value_cents)
        .sum();
    Ok(FinanceReport {
        from,
        to,
        campuses: match &scope {
            CampusScope::All => None,
            CampusScope::Only(v) => Some(v.clone()),
        },
        cash: st.store.report_cash(from, to, &scope).await?,
        revenue: st.store.report_consumption_in(from, to, &scope).await?,
        prepaid_liability_cents: liability,
        pay_basis: basis,
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
                [
                    "teacher",
                    "lessons",
                    "student_lessons",
                    "pay",
                    "pay_at_stored_rates",
                    "unrated_lessons",
                ]
                .map(String::from)
                .to_vec(),
            );
            for t in &r.teaching {
                out.push(vec![
                    t.teacher.clone(),
                    t.lessons.to_string(),
                    t.student_lessons.to_string(),
                    amount(t.pay_cents),
                    amount(t.stored_pay_cents),
                    t.unrated_lessons.to_string(),
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

// -------------------------------------------------------------------------------------------
// teacher pay rates (stored per teacher, from a local date on)
// -------------------------------------------------------------------------------------------

/// A teacher's rates from a local date on.
#[derive(Serialize, ToSchema)]
pub(crate) struct TeacherRateDoc {
    pub teacher: String,
    pub effective_from: NaiveDate,
    pub per_lesson_cents: i64,
    pub per_student_cents: i64,
    pub set_by: String,
    pub set_at: DateTime<Utc>,
}

impl From<TeacherRate> for TeacherRateDoc {
    fn from(r: TeacherRate) -> Self {
        TeacherRateDoc {
            teacher: r.teacher,
            effective_from: r.effective_from,
            per_lesson_cents: r.per_lesson_cents,
            per_student_cents: r.per_student_cents,
            set_by: r.set_by,
            set_at: r.set_at,
        }
    }
}

/// Every stored teacher rate, by teacher and date, and who teaches.
#[derive(Serialize, ToSchema)]
pub(crate) struct TeacherRates {
    rates: Vec<TeacherRateDoc>,
    /// Names a rate may be set for: the teachers of classes and lessons, teachers' accounts.
    teachers: Vec<String>,
}

pub(super) async fn list_rates(State(st): State<AppState>) -> ApiResult<Json<TeacherRates>> {
    Ok(Json(TeacherRates {
        rates: st
            .store
            .teacher_rates()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
        teachers: st.store.known_teachers().await?,
    }))
}

/// A teacher's rates from a local date on (default: today), in cents.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetRate {
    pub(crate) teacher: String,
    /// `YYYY-MM-DD`, the school's local date the rate applies from (default: today).
    pub(crate) effective_from: Option<String>,
    pub(crate) per_lesson_cents: i64,
    pub(crate) per_student_cents: i64,
}

/// The rate stored and the one of the same date it replaced.
#[derive(Serialize, ToSchema)]
pub(crate) struct RateSet {
    rate: TeacherRateDoc,
    replaced: Option<TeacherRateDoc>,
}

/// Stores a teacher's rate (a school-wide record: an account of every campus), audited.
pub(crate) async fn set_rate_for(
    st: &AppState,
    staff: &Staff,
    r: &SetRate,
) -> ApiResult<(TeacherRate, Option<TeacherRate>)> {
    staff.require(crate::auth::roles::ADMIN)?;
    require_all_campuses(staff)?;
    let from = match r
        .effective_from
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
            ApiError::invalid(format!("effective_from: {d:?} is not a date (YYYY-MM-DD)"))
        })?,
        None => st.store.local_date(st.store.now()),
    };
    let user = staff.account.username.clone();
    Ok(run(
        staff,
        st.store.set_teacher_rate(
            &r.teacher,
            from,
            r.per_lesson_cents,
            r.per_student_cents,
            &user,
        ),
    )
    .await?)
}

pub(super) async fn set_rate(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(r): JsonBody<SetRate>,
) -> ApiResult<Json<RateSet>> {
    let (rate, replaced) = set_rate_for(&st, &staff, &r).await?;
    Ok(Json(RateSet {
        rate: rate.into(),
        replaced: replaced.map(Into::into),
    }))
}
