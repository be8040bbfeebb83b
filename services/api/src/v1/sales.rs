//! Sales and refunds: orders (packages with gift lessons and discounts, the first payment and
//! an instalment plan), later payments, the school's refund policy, and refund requests asked
//! by one staff member and approved by a manager or admin who did not ask.

use super::{run, student_in_reach, student_in_scope};
use crate::auth::Staff;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, JsonBody};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDate, Utc};
use rollcall_domain::ledger::{PaymentMethod, RefundState};
use rollcall_domain::money::{Discount, Instalment, RefundPolicy, RefundTier};
use rollcall_ledger::{
    NewOrder, NewPayment, OrderLine, OrderView, RefundPolicyView, RefundRequestView,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How a payment is made.
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum Method {
    Cash,
    BankCard,
    WechatPay,
    Alipay,
    BankTransfer,
    Other,
}

impl From<Method> for PaymentMethod {
    fn from(m: Method) -> Self {
        match m {
            Method::Cash => PaymentMethod::Cash,
            Method::BankCard => PaymentMethod::BankCard,
            Method::WechatPay => PaymentMethod::WechatPay,
            Method::Alipay => PaymentMethod::Alipay,
            Method::BankTransfer => PaymentMethod::BankTransfer,
            Method::Other => PaymentMethod::Other,
        }
    }
}

/// A discount off a line's list price: `{"kind": "none"}`, `{"kind": "amount", "value":
/// cents}` or `{"kind": "percent_bp", "value": basis points}` (1 250 = 12.5 %).
#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub(super) enum DiscountIn {
    None,
    Amount(i64),
    PercentBp(u32),
}

/// One package line of an order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LineIn {
    package_id: String,
    /// `null`: usable on every campus.
    campus_id: Option<String>,
    /// Paid lessons.
    lessons: i64,
    /// Gift lessons (used last, never revenue, never refunded).
    #[serde(default)]
    gift_lessons: i64,
    /// The whole line's list price, in cents.
    list_price_cents: i64,
    discount: Option<DiscountIn>,
    /// Required with a discount.
    discount_reason: Option<String>,
    expires_at: DateTime<Utc>,
}

/// A payment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PaymentIn {
    amount_cents: i64,
    method: Method,
    /// WeChat Pay / Alipay transaction number, card slip, transfer id.
    reference: Option<String>,
    /// A one-time key: resubmitting the same payment changes nothing.
    key: Option<String>,
}

impl From<PaymentIn> for NewPayment {
    fn from(p: PaymentIn) -> Self {
        NewPayment {
            amount_cents: p.amount_cents,
            method: p.method.into(),
            reference: p.reference,
            key: p.key,
        }
    }
}

/// An instalment: due on a local date.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InstalmentIn {
    due_on: NaiveDate,
    amount_cents: i64,
}

/// An order: what is sold, what is paid now, and the plan for the rest.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OrderIn {
    id: String,
    /// A staff username.
    salesperson: Option<String>,
    note: Option<String>,
    lines: Vec<LineIn>,
    payment: Option<PaymentIn>,
    #[serde(default)]
    instalments: Vec<InstalmentIn>,
    /// When it was sold; defaults to now.
    at: Option<DateTime<Utc>>,
}

/// A student's orders, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct OrderList {
    #[schema(value_type = Vec<crate::schema::OrderView>)]
    orders: Vec<OrderView>,
}

/// An order.
#[derive(Serialize, ToSchema)]
pub(super) struct OrderOut {
    #[schema(value_type = crate::schema::OrderView)]
    order: OrderView,
}

/// The order after a payment, and whether the payment was new.
#[derive(Serialize, ToSchema)]
pub(super) struct PaymentOut {
    #[schema(value_type = crate::schema::OrderView)]
    order: OrderView,
    recorded: bool,
}

pub(super) fn order_from(student: &str, o: OrderIn, now: DateTime<Utc>) -> NewOrder {
    NewOrder {
        id: o.id,
        student_id: student.into(),
        salesperson: o.salesperson,
        note: o.note,
        lines: o
            .lines
            .into_iter()
            .map(|l| OrderLine {
                package_id: l.package_id,
                campus_id: l.campus_id,
                lessons: l.lessons,
                gift_lessons: l.gift_lessons,
                list_price_cents: l.list_price_cents,
                discount: match l.discount {
                    None | Some(DiscountIn::None) => Discount::None,
                    Some(DiscountIn::Amount(a)) => Discount::Amount(a),
                    Some(DiscountIn::PercentBp(b)) => Discount::PercentBp(b),
                },
                discount_reason: l.discount_reason,
                expires_at: l.expires_at,
            })
            .collect(),
        payment: o.payment.map(Into::into),
        instalments: o
            .instalments
            .into_iter()
            .map(|i| Instalment {
                due_on: i.due_on,
                amount_cents: i.amount_cents,
            })
            .collect(),
        at: o.at.unwrap_or(now),
    }
}

/// Checks the caller reaches every campus the order's packages are scoped to.
pub(crate) fn check_order_campuses(staff: &Staff, o: &NewOrder) -> ApiResult<()> {
    for l in &o.lines {
        if let Some(c) = &l.campus_id {
            staff.campus(c)?;
        }
    }
    Ok(())
}

pub(super) async fn sell(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(o): JsonBody<OrderIn>,
) -> ApiResult<(StatusCode, Json<OrderOut>)> {
    let order = order_from(&id, o, st.store.now());
    let v = sell_as(&st, &staff, &order).await?;
    Ok((StatusCode::CREATED, Json(OrderOut { order: v })))
}

/// Records an order as `staff`: the student and every line's campus in the caller's reach.
pub(crate) async fn sell_as(
    st: &AppState,
    staff: &Staff,
    order: &NewOrder,
) -> ApiResult<OrderView> {
    student_in_scope(st, staff, &order.student_id).await?;
    check_order_campuses(staff, order)?;
    let user = staff.account.username.clone();
    Ok(run(staff, st.store.sell(order, &user)).await?)
}

/// Records a payment as `staff` against an order in their reach.
pub(crate) async fn pay_as(
    st: &AppState,
    staff: &Staff,
    order: &str,
    p: &NewPayment,
) -> ApiResult<(OrderView, bool)> {
    order_in_reach(st, staff, order).await?;
    let user = staff.account.username.clone();
    Ok(run(staff, st.store.record_payment(order, p, &user)).await?)
}

/// Asks for a refund as `staff`.
pub(crate) async fn ask_refund_as(
    st: &AppState,
    staff: &Staff,
    student: &str,
    package: &str,
    reason: &str,
    method: PaymentMethod,
) -> ApiResult<RefundRequestView> {
    student_in_scope(st, staff, student).await?;
    let user = staff.account.username.clone();
    Ok(run(
        staff,
        st.store
            .request_refund(student, package, reason, method, &user),
    )
    .await?)
}

/// Replaces the refund policy as `staff` (an account of every campus).
pub(crate) async fn set_policy_as(st: &AppState, staff: &Staff, p: &RefundPolicy) -> ApiResult<()> {
    super::require_all_campuses(staff)?;
    let user = staff.account.username.clone();
    Ok(run(staff, st.store.set_refund_policy(p, &user)).await?)
}

pub(super) async fn list_orders(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderList>> {
    student_in_scope(&st, &staff, &id).await?;
    Ok(Json(OrderList {
        orders: st.store.orders_of(&id).await?,
    }))
}

/// An order the caller reaches (through its student's campuses).
pub(crate) async fn order_in_reach(st: &AppState, staff: &Staff, id: &str) -> ApiResult<OrderView> {
    let o = st.store.order(id).await?;
    student_in_reach(st, staff, &o.student_id).await?;
    Ok(o)
}

pub(super) async fn get_order(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<OrderOut>> {
    Ok(Json(OrderOut {
        order: order_in_reach(&st, &staff, &id).await?,
    }))
}

pub(super) async fn pay(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(p): JsonBody<PaymentIn>,
) -> ApiResult<Json<PaymentOut>> {
    let (order, recorded) = pay_as(&st, &staff, &id, &p.into()).await?;
    Ok(Json(PaymentOut { order, recorded }))
}

// ----------------------------------------------------------------------------------------------
// refunds
// ----------------------------------------------------------------------------------------------

/// The school's refund policy.
#[derive(Serialize, ToSchema)]
pub(super) struct PolicyOut {
    #[schema(value_type = crate::schema::RefundPolicyView)]
    refund_policy: RefundPolicyView,
}

/// One row of the refund table.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TierIn {
    /// Up to this share of the paid lessons used (percent, inclusive) …
    max_used_pct: u32,
    /// … the school keeps this share of what was paid and not yet earned.
    keep_pct: u32,
}

/// A new refund policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyIn {
    tiers: Vec<TierIn>,
    fee_cents: i64,
}

impl From<PolicyIn> for RefundPolicy {
    fn from(p: PolicyIn) -> Self {
        RefundPolicy {
            tiers: p
                .tiers
                .into_iter()
                .map(|t| RefundTier {
                    max_used_pct: t.max_used_pct,
                    keep_pct: t.keep_pct,
                })
                .collect(),
            fee_cents: p.fee_cents,
        }
    }
}

pub(super) async fn get_policy(State(st): State<AppState>) -> ApiResult<Json<PolicyOut>> {
    Ok(Json(PolicyOut {
        refund_policy: st.store.refund_policy().await?,
    }))
}

pub(super) async fn set_policy(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    JsonBody(p): JsonBody<PolicyIn>,
) -> ApiResult<Json<PolicyOut>> {
    set_policy_as(&st, &staff, &p.into()).await?;
    get_policy(State(st)).await
}

/// A refund request: why, and how the money goes back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundIn {
    reason: String,
    method: Method,
}

/// A refund request.
#[derive(Serialize, ToSchema)]
pub(super) struct RefundOut {
    #[schema(value_type = crate::schema::RefundRequestView)]
    refund: RefundRequestView,
}

/// Refund requests, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct RefundList {
    #[schema(value_type = Vec<crate::schema::RefundRequestView>)]
    refunds: Vec<RefundRequestView>,
}

pub(super) async fn request_refund(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, package)): Path<(String, String)>,
    JsonBody(r): JsonBody<RefundIn>,
) -> ApiResult<(StatusCode, Json<RefundOut>)> {
    let v = ask_refund_as(&st, &staff, &id, &package, &r.reason, r.method.into()).await?;
    Ok((StatusCode::CREATED, Json(RefundOut { refund: v })))
}

#[derive(Deserialize)]
pub(super) struct RefundQuery {
    state: Option<String>,
}

pub(super) async fn list_refunds(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Query(q): Query<RefundQuery>,
) -> ApiResult<Json<RefundList>> {
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RefundState::parse(s).ok_or_else(|| {
            ApiError::invalid(format!("state {s:?}: pending, approved or rejected"))
        })?),
    };
    Ok(Json(RefundList {
        refunds: refunds_in_reach(&st, &staff, state).await?,
    }))
}

/// Refund requests (newest first; `state`: only those) of the students the caller reaches
/// (the rule of [`student_in_reach`], with the students read once).
pub(crate) async fn refunds_in_reach(
    st: &AppState,
    staff: &Staff,
    state: Option<RefundState>,
) -> ApiResult<Vec<RefundRequestView>> {
    let refunds = st.store.refund_requests(state, None).await?;
    if staff.is_all_campuses() {
        return Ok(refunds);
    }
    let students = st.store.students().await?;
    Ok(refunds
        .into_iter()
        .filter(|r| {
            students
                .iter()
                .any(|s| s.id == r.student_id && staff.any_campus(&s.campuses).is_ok())
        })
        .collect())
}

/// A refund request the caller reaches.
pub(crate) async fn refund_in_reach(
    st: &AppState,
    staff: &Staff,
    id: i64,
) -> ApiResult<RefundRequestView> {
    let r = st.store.refund_request(id).await?;
    student_in_reach(st, staff, &r.student_id).await?;
    Ok(r)
}

pub(super) async fn get_refund(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
) -> ApiResult<Json<RefundOut>> {
    Ok(Json(RefundOut {
        refund: refund_in_reach(&st, &staff, super::parse_id(&id)?).await?,
    }))
}

/// A decision's note (optional).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DecideIn {
    note: Option<String>,
}

/// Approves or rejects a refund request as `staff` (the route allows managers and admins).
pub(crate) async fn decide_refund_as(
    st: &AppState,
    staff: &Staff,
    id: i64,
    approve: bool,
    note: Option<&str>,
) -> ApiResult<RefundRequestView> {
    refund_in_reach(st, staff, id).await?;
    let user = staff.account.username.clone();
    Ok(run(staff, st.store.decide_refund(id, approve, &user, note)).await?)
}

async fn decide(
    st: AppState,
    staff: Staff,
    id: String,
    approve: bool,
    note: Option<String>,
) -> ApiResult<Json<RefundOut>> {
    let id = super::parse_id(&id)?;
    let v = decide_refund_as(&st, &staff, id, approve, note.as_deref()).await?;
    Ok(Json(RefundOut { refund: v }))
}

pub(super) async fn approve_refund(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<DecideIn>,
) -> ApiResult<Json<RefundOut>> {
    decide(st, staff, id, true, d.note).await
}

pub(super) async fn reject_refund(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    JsonBody(d): JsonBody<DecideIn>,
) -> ApiResult<Json<RefundOut>> {
    decide(st, staff, id, false, d.note).await
}
