//! Packages and the ledger: balances, purchases, adjustments, reversals and refunds.

use super::{run, student_in_scope};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::quote_refund;
use rollcall_ledger::NewPackage;
use serde::Deserialize;
use serde_json::{json, Value};

pub(super) async fn balance(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    Ok(Json(json!(st.store.balance(&id, Utc::now()).await?)))
}

pub(super) async fn ledger(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    Ok(Json(json!({"entries": st.store.entries(Some(&id)).await?})))
}

#[derive(Deserialize)]
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
) -> ApiResult<(StatusCode, Json<Value>)> {
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
        Json(json!({"package": n, "balance": st.store.balance(&id, Utc::now()).await?})),
    ))
}

#[derive(Deserialize)]
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
) -> ApiResult<Json<Value>> {
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
    Ok(Json(
        json!({"applied": applied, "balance": st.store.balance(&id, Utc::now()).await?}),
    ))
}

#[derive(Deserialize)]
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
) -> ApiResult<Json<Value>> {
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
    Ok(Json(
        json!({"reversals": entries, "balance": st.store.balance(&id, Utc::now()).await?}),
    ))
}

pub(super) async fn refund_quote(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, package)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    let b = st.store.balance(&id, Utc::now()).await?;
    let p = b
        .packages
        .iter()
        .find(|p| p.package.package_id == package)
        .ok_or_else(|| ApiError::not_found(format!("unknown package {package:?}")))?;
    let q = quote_refund(&st.store.policy().refund, &p.package);
    Ok(Json(
        json!({"package_id": package, "rule": st.store.policy().refund, "quote": q}),
    ))
}

pub(super) async fn refund(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, package)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    student_in_scope(&st, &staff, &id).await?;
    let user = staff.account.username.clone();
    let r = run(&staff, st.store.refund(&id, &package, &user)).await?;
    Ok(Json(json!({"refund": r, "rule": st.store.policy().refund})))
}
