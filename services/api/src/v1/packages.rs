//! Packages and the ledger: balances, purchases, adjustments, reversals and refunds.

use super::{run, student_in_scope};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::{Entry, RefundQuote};
use rollcall_domain::money::RefundPolicy;
use rollcall_ledger::{BalanceView, NewPackage, StoredEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A student's ledger history.
#[derive(Serialize, ToSchema)]
pub(super) struct LedgerHistory {
    #[schema(value_type = Vec<crate::schema::StoredEntry>)]
    entries: Vec<StoredEntry>,
}

/// The package bought and the balance after it.
#[derive(Serialize, ToSchema)]
pub(super) struct Purchased {
    #[schema(value_type = crate::schema::NewPackage)]
    package: NewPackage,
    #[schema(value_type = crate::schema::BalanceView)]
    balance: BalanceView,
}

/// Whether the adjustment was applied (false: its key was seen before) and the balance.
#[derive(Serialize, ToSchema)]
pub(super) struct Adjusted {
    applied: bool,
    #[schema(value_type = crate::schema::BalanceView)]
    balance: BalanceView,
}

/// The reversal entries written and the balance after them.
#[derive(Serialize, ToSchema)]
pub(super) struct Reversed {
    #[schema(value_type = Vec<crate::schema::Entry>)]
    reversals: Vec<Entry>,
    #[schema(value_type = crate::schema::BalanceView)]
    balance: BalanceView,
}

/// The school's refund policy applied to a package now, without refunding.
#[derive(Serialize, ToSchema)]
pub(super) struct RefundQuoted {
    package_id: String,
    #[schema(value_type = crate::schema::RefundPolicy)]
    policy: RefundPolicy,
    #[schema(value_type = crate::schema::RefundQuote)]
    quote: RefundQuote,
}

pub(super) async fn balance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<BalanceView>> {
    student_in_scope(&st, &staff, &id).await?;
    Ok(Json(st.store.balance(&id, st.store.now()).await?))
}

pub(super) async fn ledger(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<LedgerHistory>> {
    student_in_scope(&st, &staff, &id).await?;
    Ok(Json(LedgerHistory {
        entries: st.store.entries(Some(&id)).await?,
    }))
}

/// A package to buy (`bought_at` defaults to now).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Purchase {
    id: String,
    campus_id: Option<String>,
    lessons: i64,
    unit_price_cents: i64,
    price_paid_cents: Option<i64>,
    bought_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
}

pub(super) async fn purchase(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<Purchase>,
) -> ApiResult<(StatusCode, Json<Purchased>)> {
    student_in_scope(&st, &staff, &id).await?;
    if let Some(c) = &p.campus_id {
        staff.campus(c)?;
    }
    if p.lessons <= 0 || p.lessons > 10_000 {
        return Err(ApiError::invalid("lessons: 1–10000"));
    }
    if p.unit_price_cents < 0 || p.price_paid_cents.is_some_and(|v| v < 0) {
        return Err(ApiError::invalid("prices must not be negative"));
    }
    let n = NewPackage {
        id: p.id,
        student_id: id.clone(),
        campus_id: p.campus_id,
        lessons: p.lessons,
        unit_price_cents: p.unit_price_cents,
        price_paid_cents: p.price_paid_cents,
        bought_at: p.bought_at.unwrap_or_else(Utc::now),
        expires_at: p.expires_at,
    };
    run(&staff, st.store.purchase(&n)).await?;
    Ok((
        StatusCode::CREATED,
        Json(Purchased {
            package: n,
            balance: st.store.balance(&id, st.store.now()).await?,
        }),
    ))
}

/// A manual adjustment: signed hundredths of a lesson, an idempotency key and a note.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Adjust {
    package_id: Option<String>,
    units: i64,
    key: String,
    note: String,
}

pub(super) async fn adjust(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(a): JsonBody<Adjust>,
) -> ApiResult<Json<Adjusted>> {
    student_in_scope(&st, &staff, &id).await?;
    if a.key.is_empty() || a.note.trim().is_empty() {
        return Err(ApiError::invalid("key and note are required"));
    }
    let user = staff.account.username.clone();
    let applied = run(
        &staff,
        st.store.adjust(
            &id,
            a.package_id.as_deref(),
            a.units,
            &a.key,
            &user,
            &a.note,
        ),
    )
    .await?;
    Ok(Json(Adjusted {
        applied,
        balance: st.store.balance(&id, st.store.now()).await?,
    }))
}

/// The lesson whose deduction to reverse, and why.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Reverse {
    lesson_id: String,
    note: String,
}

pub(super) async fn reverse(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(r): JsonBody<Reverse>,
) -> ApiResult<Json<Reversed>> {
    student_in_scope(&st, &staff, &id).await?;
    // the lesson too: a child of two campuses has lessons at a campus beyond the caller's
    let lesson = st.store.lesson(&r.lesson_id).await?;
    staff.campus(&lesson.campus_id)?;
    let user = staff.account.username.clone();
    let entries = run(
        &staff,
        st.store.reverse_lesson(&id, &r.lesson_id, &user, &r.note),
    )
    .await?;
    Ok(Json(Reversed {
        reversals: entries,
        balance: st.store.balance(&id, st.store.now()).await?,
    }))
}

pub(super) async fn refund_quote(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, package)): Path<(String, String)>,
) -> ApiResult<Json<RefundQuoted>> {
    student_in_scope(&st, &staff, &id).await?;
    let quote = st.store.quote_refund(&id, &package).await?;
    Ok(Json(RefundQuoted {
        package_id: package,
        policy: st.store.refund_policy().await?.policy,
        quote,
    }))
}
