//! The front desk's money pages: selling a package (gift lessons, a discount with its reason,
//! the payment and an instalment plan), the order with its printable receipt and a payment
//! form, a refund request with its computation, the refund queue where a manager or admin who
//! did not ask approves or rejects, the printable refund slip, and the refund policy table
//! (admin). Each form goes through the API's own functions (`v1::sell_as`, …): the same
//! checks, roles, campus scope and audit.

use super::layout::page;
use super::{check_csrf, local, t, url, words_in_lang_field, Lang, Words};
use crate::auth::{roles, Staff};
use crate::error::ApiError;
use crate::v1;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::{Duration, NaiveDate};
use rollcall_domain::ledger::{Cents, PaymentMethod, RefundState};
use rollcall_domain::money::{Discount, Instalment, RefundPolicy, RefundTier};
use rollcall_ledger::{NewOrder, NewPayment, OrderLine, OrderView, RefundRequestView};
use serde::Deserialize;

pub(super) use rollcall_domain::money::fmt_cents as money;

/// Money text (`2400`, `2,400.5`, `2400.50`, `¥2400`) as cents; at most two decimals.
pub(super) fn parse_money(field: &str, s: &str) -> Result<Cents, String> {
    let t: String = s
        .trim()
        .trim_start_matches(['¥', '￥', '$'])
        .chars()
        .filter(|c| *c != ',' && !c.is_whitespace())
        .collect();
    let bad = || format!("{field}: enter an amount such as 2400 or 2400.50");
    if t.is_empty() || t.len() > 14 {
        return Err(bad());
    }
    let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let w: i64 = whole.parse().map_err(|_| bad())?;
    let f: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    w.checked_mul(100)
        .and_then(|v| v.checked_add(f))
        .ok_or_else(bad)
}

/// The payment methods, in the order the form offers them.
const METHODS: [PaymentMethod; 6] = [
    PaymentMethod::WechatPay,
    PaymentMethod::Alipay,
    PaymentMethod::Cash,
    PaymentMethod::BankCard,
    PaymentMethod::BankTransfer,
    PaymentMethod::Other,
];

/// The sale form, as typed (kept to show it again with the error).
#[derive(Deserialize, Default, Clone)]
pub(super) struct SellForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    order_id: String,
    #[serde(default)]
    campus: String,
    #[serde(default)]
    lessons: String,
    #[serde(default)]
    gift_lessons: String,
    #[serde(default)]
    list_price: String,
    #[serde(default)]
    discount_kind: String,
    #[serde(default)]
    discount: String,
    #[serde(default)]
    discount_reason: String,
    #[serde(default)]
    valid_months: String,
    #[serde(default)]
    paid: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    salesperson: String,
    #[serde(default)]
    due1: String,
    #[serde(default)]
    amount1: String,
    #[serde(default)]
    due2: String,
    #[serde(default)]
    amount2: String,
    #[serde(default)]
    due3: String,
    #[serde(default)]
    amount3: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"
{%- if let Some(e) = error -%}<p class='card err' id=error>{{ e }}</p>{%- endif -%}
<form method=post action="/app/students/{{ student }}/sell" class=card id=sell><input type=hidden name=_csrf value="{{ csrf }}">
<p><label>{{ t("order_no") }} <input name=order_id value="{{ f.order_id }}" required maxlength=64></label>
<label>{{ t("campus") }} <select name=campus><option value="">{{ t("all_campuses") }}</option>
{%- for c in campuses -%}<option value="{{ c.0 }}" {% if c.0 == f.campus %}selected{% endif %}>{{ c.1 }}</option>{%- endfor -%}
</select></label></p>
<p><label>{{ t("lessons_paid") }} <input name=lessons value="{{ f.lessons }}" inputmode=numeric required size=5></label>
<label>{{ t("gift_lessons") }} <input name=gift_lessons value="{{ f.gift_lessons }}" inputmode=numeric size=5></label>
<label>{{ t("valid_months") }} <input name=valid_months value="{{ f.valid_months }}" inputmode=numeric size=4></label></p>
<p><label>{{ t("list_price") }} <input name=list_price value="{{ f.list_price }}" inputmode=decimal required size=10></label>
<label>{{ t("discount") }} <select name=discount_kind>
<option value=none {% if f.discount_kind == "none" %}selected{% endif %}>{{ t("discount_none") }}</option>
<option value=amount {% if f.discount_kind == "amount" %}selected{% endif %}>{{ t("discount_amount") }}</option>
<option value=percent {% if f.discount_kind == "percent" %}selected{% endif %}>{{ t("discount_percent") }}</option>
</select> <input name=discount value="{{ f.discount }}" inputmode=decimal size=8></label>
<label>{{ t("discount_reason") }} <input name=discount_reason value="{{ f.discount_reason }}" maxlength=200></label></p>
<p><label>{{ t("paid_now") }} <input name=paid value="{{ f.paid }}" inputmode=decimal size=10></label>
<label>{{ t("method") }} <select name=method>
{%- for m in methods -%}<option value="{{ m.0 }}" {% if m.0 == f.method %}selected{% endif %}>{{ t(m.0) }}</option>{%- endfor -%}
</select></label>
<label>{{ t("reference") }} <input name=reference value="{{ f.reference }}" maxlength=100></label>
<label>{{ t("salesperson") }} <select name=salesperson><option value=""></option>
{%- for s in staff_names -%}<option value="{{ s.0 }}" {% if s.0 == f.salesperson %}selected{% endif %}>{{ s.1 }}</option>{%- endfor -%}
</select></label></p>
<p>{{ t("instalments_help") }}</p>
<p><input name=due1 type=date value="{{ f.due1 }}"> <input name=amount1 value="{{ f.amount1 }}" inputmode=decimal size=10></p>
<p><input name=due2 type=date value="{{ f.due2 }}"> <input name=amount2 value="{{ f.amount2 }}" inputmode=decimal size=10></p>
<p><input name=due3 type=date value="{{ f.due3 }}"> <input name=amount3 value="{{ f.amount3 }}" inputmode=decimal size=10></p>
<button>{{ t("sell") }}</button></form>"#
)]
struct SellPage<'a> {
    lang: Lang,
    csrf: &'a str,
    student: &'a str,
    f: SellForm,
    error: Option<String>,
    campuses: Vec<(String, String)>,
    methods: Vec<(&'static str,)>,
    staff_names: Vec<(String, String)>,
}

words_in_lang_field!(SellPage<'_>);

async fn sell_page_with(
    st: &AppState,
    staff: &Staff,
    lang: Lang,
    student: &str,
    f: SellForm,
    error: Option<String>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(st, staff, student).await?;
    let campuses = st
        .store
        .campuses()
        .await?
        .into_iter()
        .filter(|c| staff.allows_campus(&c.0))
        .collect();
    let staff_names = st
        .store
        .list_staff()
        .await?
        .into_iter()
        .filter(|a| !a.disabled)
        .map(|a| (a.username, a.display_name))
        .collect();
    let body = SellPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        student,
        f,
        error: error.map(|m| in_words(lang, &m)),
        campuses,
        methods: METHODS.iter().map(|m| (m.as_str(),)).collect(),
        staff_names,
    };
    page(
        lang,
        staff,
        &format!("{} · {}", t(lang, "sell_title"), s.name),
        body,
    )
}

pub(super) async fn sell_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let today = st.store.local_date(st.store.now());
    let n = st.store.orders_of(&id).await.map(|o| o.len()).unwrap_or(0);
    let f = SellForm {
        order_id: format!("{}-{}-{}", id, today.format("%Y%m%d"), n + 1),
        lessons: "10".into(),
        gift_lessons: "0".into(),
        valid_months: "12".into(),
        discount_kind: "none".into(),
        method: PaymentMethod::WechatPay.as_str().into(),
        salesperson: staff.account.username.clone(),
        ..SellForm::default()
    };
    sell_page_with(&st, &staff, lang, &id, f, None).await
}

fn int(field: &str, s: &str, default: i64) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(default);
    }
    s.parse::<i64>()
        .map_err(|_| format!("{field}: enter a whole number"))
}

/// The order a sale form describes (`now`: the sale's time; the school's local dates).
fn order_of(st: &AppState, student: &str, f: &SellForm) -> Result<NewOrder, String> {
    let now = st.store.now();
    let lessons = int("lessons", &f.lessons, 0)?;
    let gifts = int("gift_lessons", &f.gift_lessons, 0)?;
    let months = int("valid_months", &f.valid_months, 12)?;
    if !(1..=60).contains(&months) {
        return Err("valid_months: 1 to 60".into());
    }
    let list = parse_money("list_price", &f.list_price)?;
    let discount = match f.discount_kind.as_str() {
        "amount" => Discount::Amount(parse_money("discount", &f.discount)?),
        "percent" => {
            // a percentage with up to two decimals, in basis points
            let bp = parse_money("discount", &f.discount)?;
            Discount::PercentBp(u32::try_from(bp).map_err(|_| "discount: 0 to 100 %".to_string())?)
        }
        _ => Discount::None,
    };
    let paid = if f.paid.trim().is_empty() {
        None
    } else {
        Some(parse_money("paid", &f.paid)?)
    };
    let method = PaymentMethod::parse(&f.method).ok_or("method: choose how it was paid")?;
    let mut instalments = Vec::new();
    for (d, a) in [
        (&f.due1, &f.amount1),
        (&f.due2, &f.amount2),
        (&f.due3, &f.amount3),
    ] {
        if d.trim().is_empty() && a.trim().is_empty() {
            continue;
        }
        let due_on = NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
            .map_err(|_| "instalments: each needs a due date and an amount".to_string())?;
        instalments.push(Instalment {
            due_on,
            amount_cents: parse_money("instalments", a)?,
        });
    }
    Ok(NewOrder {
        id: f.order_id.trim().to_string(),
        student_id: student.into(),
        salesperson: Some(f.salesperson.clone()).filter(|s| !s.trim().is_empty()),
        note: None,
        lines: vec![OrderLine {
            package_id: f.order_id.trim().to_string(),
            campus_id: Some(f.campus.clone()).filter(|c| !c.is_empty()),
            lessons,
            gift_lessons: gifts,
            list_price_cents: list,
            discount,
            discount_reason: Some(f.discount_reason.clone()).filter(|r| !r.trim().is_empty()),
            expires_at: now + Duration::days(months * 30 + 1),
        }],
        payment: paid.filter(|p| *p > 0).map(|amount_cents| NewPayment {
            amount_cents,
            method,
            reference: Some(f.reference.clone()).filter(|r| !r.trim().is_empty()),
            key: Some("sale".into()),
        }),
        instalments,
        at: now,
    })
}

/// The error's message when the form can be shown again with it (invalid input, a conflict),
/// `None` for the others (they become the app's error page).
/// A form's error in the reader's language: the field it is about (by its label on the form)
/// and what to do, then the detail as the checks wrote it (`invalid discount_reason: …`,
/// `lessons: enter a whole number`).
fn in_words(lang: Lang, msg: &str) -> String {
    let field = msg
        .strip_prefix("invalid ")
        .unwrap_or(msg)
        .split(':')
        .next()
        .unwrap_or("")
        .trim();
    let label = match field {
        "order" | "order_id" => "order_no",
        "lessons" => "lessons_paid",
        "gift_lessons" => "gift_lessons",
        "list_price" => "list_price",
        "discount" => "discount",
        "discount_reason" => "discount_reason",
        "amount" | "paid" => "paid_now",
        "reference" => "reference",
        "salesperson" => "salesperson",
        "instalments" => "instalments",
        "expires_at" | "valid_months" => "valid_months",
        "method" => "method",
        "lines" | "package" => "packages",
        _ => return format!("{} ({msg})", t(lang, "err_invalid")),
    };
    format!("{}: {} ({msg})", t(lang, label), t(lang, "check_this"))
}

fn form_error(e: &ApiError) -> Option<String> {
    matches!(
        e.status,
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST | StatusCode::CONFLICT
    )
    .then(|| e.message.clone())
}

pub(super) async fn sell_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
    Form(f): Form<SellForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let order = match order_of(&st, &id, &f) {
        Ok(o) => o,
        Err(msg) => {
            return Ok(sell_page_with(&st, &staff, lang, &id, f, Some(msg))
                .await?
                .into_response())
        }
    };
    match v1::sell_as(&st, &staff, &order).await {
        Ok(o) => Ok(Redirect::to(&format!("/app/orders/{}", url(&o.id))).into_response()),
        Err(e) => match form_error(&e) {
            Some(msg) => Ok(sell_page_with(&st, &staff, lang, &id, f, Some(msg))
                .await?
                .into_response()),
            None => Err(e),
        },
    }
}

// ----------------------------------------------------------------------------------------------
// the order and its receipt
// ----------------------------------------------------------------------------------------------

struct LineRow {
    package: String,
    lessons: i64,
    gifts: i64,
    list: String,
    discount: String,
    reason: String,
    due: String,
    expires: String,
}

struct PayRow {
    at: String,
    amount: String,
    method: &'static str,
    reference: String,
    by: String,
}

struct PlanRow {
    due_on: String,
    amount: String,
    covered: bool,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card id=receipt><h2>{{ t("receipt") }} {{ o.id }}</h2>
<p>{{ school }} · {{ student_name }} ({{ o.student_id }}) · {{ created }}{% if let Some(s) = o.salesperson %} · {{ t("salesperson") }}: {{ s }}{% endif %}</p>
<table><tr><th>{{ t("packages") }}</th><th>{{ t("lessons_paid") }}</th><th>{{ t("gift_lessons") }}</th><th>{{ t("list_price") }}</th><th>{{ t("discount") }}</th><th>{{ t("due") }}</th><th>{{ t("expires") }}</th></tr>
{%- for l in lines -%}
<tr><td>{{ l.package }}</td><td>{{ l.lessons }}</td><td>{{ l.gifts }}</td><td>{{ l.list }}</td><td>{{ l.discount }}{% if !l.reason.is_empty() %} ({{ l.reason }}){% endif %}</td><td>{{ l.due }}</td><td>{{ l.expires }}</td></tr>
{%- endfor -%}
</table>
<p>{{ t("total_due") }}: <b id=due>{{ due }}</b> · {{ t("paid") }}: <b id=paid>{{ paid }}</b> · {{ t("outstanding") }}: <b id=outstanding>{{ outstanding }}</b></p>
{%- if !payments.is_empty() -%}
<table id=payments><tr><th>{{ t("paid_at") }}</th><th>{{ t("amount") }}</th><th>{{ t("method") }}</th><th>{{ t("reference") }}</th><th>{{ t("received_by") }}</th></tr>
{%- for p in payments -%}
<tr><td>{{ p.at }}</td><td>{{ p.amount }}</td><td>{{ t(p.method) }}</td><td>{{ p.reference }}</td><td>{{ p.by }}</td></tr>
{%- endfor -%}
</table>
{%- endif -%}
{%- if !plan.is_empty() -%}
<table id=plan><tr><th>{{ t("due_on") }}</th><th>{{ t("amount") }}</th><th></th></tr>
{%- for p in plan -%}
<tr><td>{{ p.due_on }}</td><td>{{ p.amount }}</td><td>{% if p.covered %}{{ t("covered") }}{% endif %}</td></tr>
{%- endfor -%}
</table>
{%- endif -%}
</div>
<p class=noprint><button onclick=window.print()>{{ t("print") }}</button> <a href="/app/students/{{ o.student_id }}/money">{{ t("money_title") }}</a></p>
{%- if let Some(c) = pay_csrf -%}
<form method=post action="/app/orders/{{ o.id }}/pay" class='card noprint' id=pay><input type=hidden name=_csrf value="{{ c }}"><input type=hidden name=key value="{{ pay_key }}">
<label>{{ t("amount") }} <input name=amount value="{{ outstanding }}" inputmode=decimal required size=10></label>
<label>{{ t("method") }} <select name=method>
{%- for m in methods -%}<option value="{{ m.0 }}">{{ t(m.0) }}</option>{%- endfor -%}
</select></label>
<label>{{ t("reference") }} <input name=reference maxlength=100></label>
<button>{{ t("record_payment") }}</button></form>
{%- endif -%}"#
)]
struct OrderPage<'a> {
    lang: Lang,
    school: &'a str,
    student_name: &'a str,
    o: &'a OrderView,
    created: String,
    lines: Vec<LineRow>,
    payments: Vec<PayRow>,
    plan: Vec<PlanRow>,
    due: String,
    paid: String,
    outstanding: String,
    /// The payment form's token, when something is outstanding and the reader may take money.
    pay_csrf: Option<&'a str>,
    /// A one-time key: a payment form sent twice records one payment.
    pay_key: String,
    methods: Vec<(&'static str,)>,
}

words_in_lang_field!(OrderPage<'_>);

pub(super) async fn order_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let o = v1::order_in_reach(&st, &staff, &id).await?;
    let s = st.store.student(&o.student_id).await?;
    let day = |t| local(&st, t).format("%Y-%m-%d").to_string();
    let lines = o
        .lines
        .iter()
        .map(|l| LineRow {
            package: l.package_id.clone(),
            lessons: l.lessons,
            gifts: l.gift_lessons,
            list: money(l.list_price_cents),
            discount: money(l.discount_cents),
            reason: l.discount_reason.clone().unwrap_or_default(),
            due: money(l.due_cents),
            expires: day(l.expires_at),
        })
        .collect();
    let payments = o
        .payments
        .iter()
        .map(|p| PayRow {
            at: local(&st, p.received_at)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            amount: money(p.amount_cents),
            method: p.method.as_str(),
            reference: p.reference.clone().unwrap_or_default(),
            by: p.received_by.clone(),
        })
        .collect();
    let plan = o
        .instalments
        .iter()
        .map(|i| PlanRow {
            due_on: i.due_on.to_string(),
            amount: money(i.amount_cents),
            covered: i.covered,
        })
        .collect();
    let can_pay = o.outstanding_cents > 0 && staff.require(roles::SELL).is_ok();
    let body = OrderPage {
        lang,
        school: st.store.school_id(),
        student_name: &s.name,
        o: &o,
        created: local(&st, o.created_at)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
        lines,
        payments,
        plan,
        due: money(o.due_cents),
        paid: money(o.paid_cents),
        outstanding: money(o.outstanding_cents),
        pay_csrf: staff.csrf.as_deref().filter(|_| can_pay),
        pay_key: format!("p{}", o.payments.len() + 1),
        methods: METHODS.iter().map(|m| (m.as_str(),)).collect(),
    };
    page(
        lang,
        &staff,
        &format!("{} {}", t(lang, "order"), o.id),
        body,
    )
}

#[derive(Deserialize)]
pub(super) struct PayForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    reference: String,
}

pub(super) async fn pay_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<PayForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    // the order's campus first: another campus's order is refused whatever the form holds
    v1::order_in_reach(&st, &staff, &id).await?;
    let amount_cents = parse_money("amount", &f.amount).map_err(ApiError::invalid)?;
    let method = PaymentMethod::parse(&f.method)
        .ok_or_else(|| ApiError::invalid("method: choose how it was paid"))?;
    let p = NewPayment {
        amount_cents,
        method,
        reference: Some(f.reference).filter(|r| !r.trim().is_empty()),
        key: Some(f.key).filter(|k| !k.trim().is_empty()),
    };
    v1::pay_as(&st, &staff, &id, &p).await?;
    Ok(Redirect::to(&format!("/app/orders/{}", url(&id))).into_response())
}

// ----------------------------------------------------------------------------------------------
// a student's money: orders, packages with their refund links, refund requests
// ----------------------------------------------------------------------------------------------

struct OrderRow {
    id: String,
    at: String,
    due: String,
    outstanding: String,
}

struct PackageRow {
    id: String,
    balance: String,
    paid: String,
    gifts: i64,
}

struct RefundRow {
    id: i64,
    package: String,
    state: &'static str,
    amount: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{%- if can_sell -%}<p><a href="/app/students/{{ student }}/sell"><button type=button>{{ t("sell_title") }}</button></a></p>{%- endif -%}
<div class=card id=orders><h2>{{ t("orders") }}</h2><table><tr><th>{{ t("order_no") }}</th><th>{{ t("date") }}</th><th>{{ t("total_due") }}</th><th>{{ t("outstanding") }}</th></tr>
{%- for o in orders -%}<tr><td><a href="/app/orders/{{ o.id }}">{{ o.id }}</a></td><td>{{ o.at }}</td><td>{{ o.due }}</td><td>{{ o.outstanding }}</td></tr>{%- endfor -%}
</table></div>
<div class=card id=refundable><h2>{{ t("packages") }}</h2><table><tr><th></th><th>{{ t("balance") }}</th><th>{{ t("price_paid") }}</th><th>{{ t("gift_lessons") }}</th><th></th></tr>
{%- for p in packages -%}<tr><td>{{ p.id }}</td><td>{{ p.balance }}</td><td>{{ p.paid }}</td><td>{{ p.gifts }}</td><td>{% if can_sell %}<a href="/app/students/{{ student }}/refund/{{ p.id }}">{{ t("refund_ask") }}</a>{% endif %}</td></tr>{%- endfor -%}
</table></div>
{%- if !refunds.is_empty() -%}
<div class=card id=refunds><h2>{{ t("refunds") }}</h2><table>
{%- for r in refunds -%}<tr><td><a href="/app/refunds/{{ r.id }}">#{{ r.id }}</a></td><td>{{ r.package }}</td><td>{{ t(r.state) }}</td><td>{{ r.amount }}</td></tr>{%- endfor -%}
</table></div>
{%- endif -%}"#
)]
struct MoneyPage<'a> {
    lang: Lang,
    student: &'a str,
    can_sell: bool,
    orders: Vec<OrderRow>,
    packages: Vec<PackageRow>,
    refunds: Vec<RefundRow>,
}

words_in_lang_field!(MoneyPage<'_>);

pub(super) async fn money_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(&st, &staff, &id).await?;
    let orders = st
        .store
        .orders_of(&id)
        .await?
        .into_iter()
        .map(|o| OrderRow {
            at: local(&st, o.created_at).format("%Y-%m-%d").to_string(),
            due: money(o.due_cents),
            outstanding: money(o.outstanding_cents),
            id: o.id,
        })
        .collect();
    let b = st.store.balance(&id, st.store.now()).await?;
    let packages = b
        .packages
        .iter()
        .map(|p| PackageRow {
            id: p.package.package_id.clone(),
            balance: p.balance.clone(),
            paid: money(p.package.price_paid_cents),
            gifts: p.package.gift_lessons,
        })
        .collect();
    let refunds = st
        .store
        .refund_requests(None, Some(&id))
        .await?
        .into_iter()
        .map(|r| RefundRow {
            amount: money(r.refund_cents.unwrap_or(r.quote.refund_cents)),
            id: r.id,
            package: r.package_id,
            state: r.state.as_str(),
        })
        .collect();
    let body = MoneyPage {
        lang,
        student: &id,
        can_sell: staff.require(roles::SELL).is_ok(),
        orders,
        packages,
        refunds,
    };
    page(
        lang,
        &staff,
        &format!("{} · {}", t(lang, "money_title"), s.name),
        body,
    )
}

// ----------------------------------------------------------------------------------------------
// refunds
// ----------------------------------------------------------------------------------------------

/// A refund computation in words and amounts.
struct Computation {
    paid: String,
    used: String,
    paid_lessons: String,
    unearned: String,
    tier: String,
    kept: String,
    fee: String,
    refund: String,
    lessons_removed: String,
    gifts_removed: String,
}

fn lessons(u: i64) -> String {
    rollcall_domain::ledger::fmt_units(u)
}

fn computation(q: &rollcall_domain::ledger::RefundQuote, lang: Lang) -> Computation {
    Computation {
        paid: money(q.paid_cents),
        used: lessons(q.used_paid_units),
        paid_lessons: lessons(q.paid_units),
        unearned: money(q.unearned_cents),
        tier: match q.tier {
            Some(i) => format!("{}", i + 1),
            None => t(lang, "no_tier").to_string(),
        },
        kept: money(q.kept_cents),
        fee: money(q.fee_cents),
        refund: money(q.refund_cents),
        lessons_removed: lessons(q.units),
        gifts_removed: lessons(q.gift_units_removed),
    }
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<table class=computation id=computation>
<tr><td>{{ t("price_paid") }}</td><td>{{ c.paid }}</td></tr>
<tr><td>{{ t("used_of_paid") }}</td><td>{{ c.used }} / {{ c.paid_lessons }}</td></tr>
<tr><td>{{ t("unearned") }}</td><td>{{ c.unearned }}</td></tr>
<tr><td>{{ t("tier") }}</td><td>{{ c.tier }}</td></tr>
<tr><td>{{ t("kept") }}</td><td>{{ c.kept }}</td></tr>
<tr><td>{{ t("fee") }}</td><td>{{ c.fee }}</td></tr>
<tr><td><b>{{ t("refund_amount") }}</b></td><td><b id=refund-amount>{{ c.refund }}</b></td></tr>
<tr><td>{{ t("lessons_removed") }}</td><td>{{ c.lessons_removed }} ({{ t("gift_lessons") }}: {{ c.gifts_removed }})</td></tr>
</table>"#
)]
struct ComputationTable {
    lang: Lang,
    c: Computation,
}

words_in_lang_field!(ComputationTable);

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card>{{ table|safe }}</div>
{%- if eligible -%}
<form method=post action="/app/students/{{ student }}/refund/{{ package }}" class=card id=ask-refund><input type=hidden name=_csrf value="{{ csrf }}">
<label>{{ t("reason") }} <input name=reason required maxlength=500 size=40></label>
<label>{{ t("refund_method") }} <select name=method>
{%- for m in methods -%}<option value="{{ m.0 }}">{{ t(m.0) }}</option>{%- endfor -%}
</select></label>
<button>{{ t("refund_ask") }}</button><p>{{ t("refund_needs_approval") }}</p></form>
{%- else -%}<p class='card err'>{{ t("not_refundable") }}</p>{%- endif -%}"#
)]
struct AskRefundPage<'a> {
    lang: Lang,
    csrf: &'a str,
    student: &'a str,
    package: &'a str,
    /// The computation table, rendered (escaped) by its own template.
    table: String,
    eligible: bool,
    methods: Vec<(&'static str,)>,
}

words_in_lang_field!(AskRefundPage<'_>);

pub(super) async fn ask_refund_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path((id, package)): Path<(String, String)>,
) -> Result<Html<String>, ApiError> {
    let s = v1::student_in_reach(&st, &staff, &id).await?;
    let q = st.store.quote_refund(&id, &package).await?;
    let table = super::html(&ComputationTable {
        lang,
        c: computation(&q, lang),
    })?
    .0;
    let body = AskRefundPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        student: &id,
        package: &package,
        table,
        eligible: q.eligible,
        methods: METHODS.iter().map(|m| (m.as_str(),)).collect(),
    };
    page(
        lang,
        &staff,
        &format!("{} · {} · {}", t(lang, "refund_ask"), s.name, package),
        body,
    )
}

#[derive(Deserialize)]
pub(super) struct AskRefundForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    method: String,
}

pub(super) async fn ask_refund_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path((id, package)): Path<(String, String)>,
    Form(f): Form<AskRefundForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    v1::student_in_reach(&st, &staff, &id).await?;
    let method = PaymentMethod::parse(&f.method)
        .ok_or_else(|| ApiError::invalid("method: choose how the money goes back"))?;
    let r = v1::ask_refund_as(&st, &staff, &id, &package, &f.reason, method).await?;
    Ok(Redirect::to(&format!("/app/refunds/{}", r.id)).into_response())
}

struct QueueRow {
    id: i64,
    student: String,
    package: String,
    amount: String,
    reason: String,
    asked_by: String,
    at: String,
    state: &'static str,
    /// The reader may decide it (a manager or admin who did not ask).
    may_decide: bool,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card id=refund-queue><table><tr><th>#</th><th>{{ t("students") }}</th><th>{{ t("packages") }}</th><th>{{ t("refund_amount") }}</th><th>{{ t("reason") }}</th><th>{{ t("asked_by") }}</th><th></th></tr>
{%- for r in rows -%}
<tr><td><a href="/app/refunds/{{ r.id }}">{{ r.id }}</a></td><td>{{ r.student }}</td><td>{{ r.package }}</td><td>{{ r.amount }}</td><td>{{ r.reason }}</td><td>{{ r.asked_by }} · {{ r.at }}</td><td>
{%- if r.may_decide -%}
<form method=post action="/app/refunds/{{ r.id }}" style=display:inline><input type=hidden name=_csrf value="{{ csrf }}"><input name=note placeholder="{{ t("note") }}" maxlength=200><button name=decision value=approve>{{ t("approve_refund") }}</button><button class=no name=decision value=reject onclick="return confirm(this.dataset.q)" data-q="{{ t("confirm_reject_refund") }}">{{ t("reject_refund") }}</button></form>
{%- else -%}{{ t(r.state) }}{%- endif -%}
</td></tr>
{%- endfor -%}
</table>
{%- if rows.is_empty() -%}<p>{{ t("no_refunds") }}</p>{%- endif -%}
</div>"#
)]
struct QueuePage<'a> {
    lang: Lang,
    csrf: &'a str,
    rows: Vec<QueueRow>,
}

words_in_lang_field!(QueuePage<'_>);

pub(super) async fn refunds_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    let money_role = staff.require(roles::MONEY).is_ok();
    let students = st.store.students().await?;
    let mut rows = Vec::new();
    for r in v1::refunds_in_reach(&st, &staff, None).await? {
        let name = students
            .iter()
            .find(|s| s.id == r.student_id)
            .map_or_else(|| r.student_id.clone(), |s| s.name.clone());
        rows.push(QueueRow {
            may_decide: money_role
                && r.state == RefundState::Pending
                && r.requested_by != staff.account.username,
            id: r.id,
            student: name,
            package: r.package_id.clone(),
            amount: money(r.refund_cents.unwrap_or(r.quote.refund_cents)),
            reason: r.reason.clone(),
            asked_by: r.requested_by.clone(),
            at: local(&st, r.requested_at)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            state: r.state.as_str(),
        });
    }
    let body = QueuePage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        rows,
    };
    page(lang, &staff, t(lang, "refunds"), body)
}

#[derive(Deserialize)]
pub(super) struct DecideForm {
    #[serde(default)]
    _csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
}

pub(super) async fn decide_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Path(id): Path<String>,
    Form(f): Form<DecideForm>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, &f._csrf)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no refund request {id:?}")))?;
    v1::refund_in_reach(&st, &staff, id).await?;
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(ApiError::invalid("decision: approve or reject")),
    };
    let note = Some(f.note.trim()).filter(|n| !n.is_empty());
    v1::decide_refund_as(&st, &staff, id, approve, note).await?;
    Ok(Redirect::to(&format!("/app/refunds/{id}")).into_response())
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<div class=card id=slip><h2>{{ t("refund_slip") }} #{{ r.id }}</h2>
<p>{{ school }} · {{ student_name }} ({{ r.student_id }}) · {{ t("packages") }} {{ r.package_id }}</p>
<p>{{ t("reason") }}: {{ r.reason }} · {{ t("refund_method") }}: {{ t(method) }}</p>
<p>{{ t("asked_by") }}: {{ r.requested_by }} · {{ asked_at }}</p>
<p id=state>{{ t(state) }}{% if let Some(d) = r.decided_by %} · {{ d }} · {{ decided_at }}{% endif %}{% if let Some(n) = r.decision_note %} · {{ n }}{% endif %}</p>
{{ table|safe }}
<p class=sign>{{ t("signature") }}: ____________________</p></div>
<p class=noprint><button onclick=window.print()>{{ t("print") }}</button> <a href="/app/refunds">{{ t("refunds") }}</a></p>"#
)]
struct SlipPage<'a> {
    lang: Lang,
    school: &'a str,
    student_name: &'a str,
    r: &'a RefundRequestView,
    method: &'static str,
    state: &'static str,
    asked_at: String,
    decided_at: String,
    /// The computation table, rendered (escaped) by its own template.
    table: String,
}

words_in_lang_field!(SlipPage<'_>);

pub(super) async fn slip_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Path(id): Path<String>,
) -> Result<Html<String>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no refund request {id:?}")))?;
    let r = v1::refund_in_reach(&st, &staff, id).await?;
    let s = st.store.student(&r.student_id).await?;
    let table = super::html(&ComputationTable {
        lang,
        c: computation(&r.quote, lang),
    })?
    .0;
    let at = |t| local(&st, t).format("%Y-%m-%d %H:%M").to_string();
    let body = SlipPage {
        lang,
        school: st.store.school_id(),
        student_name: &s.name,
        r: &r,
        method: r.method.as_str(),
        state: r.state.as_str(),
        asked_at: at(r.requested_at),
        decided_at: r.decided_at.map(at).unwrap_or_default(),
        table,
    };
    page(
        lang,
        &staff,
        &format!("{} #{}", t(lang, "refund_slip"), r.id),
        body,
    )
}

// ----------------------------------------------------------------------------------------------
// the refund policy table (admin)
// ----------------------------------------------------------------------------------------------

struct TierRow {
    max_used: String,
    keep: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"{%- if let Some(e) = error -%}<p class='card err' id=error>{{ e }}</p>{%- endif -%}
<div class=card><p>{{ t("policy_help") }}</p>
{%- if let Some(by) = updated_by -%}<p>{{ t("changed_by") }} {{ by }} · {{ updated_at }}</p>{%- endif -%}
<form method=post action=/app/refund-policy id=policy><input type=hidden name=_csrf value="{{ csrf }}">
<table><tr><th>{{ t("max_used_pct") }}</th><th>{{ t("keep_pct") }}</th></tr>
{%- for (i, r) in rows.iter().enumerate() -%}
<tr><td><input name="max{{ i }}" value="{{ r.max_used }}" inputmode=numeric size=4 {% if !editable %}disabled{% endif %}> %</td><td><input name="keep{{ i }}" value="{{ r.keep }}" inputmode=numeric size=4 {% if !editable %}disabled{% endif %}> %</td></tr>
{%- endfor -%}
</table><p><label>{{ t("fee") }} <input name=fee value="{{ fee }}" inputmode=decimal size=8 {% if !editable %}disabled{% endif %}></label></p>
{%- if editable -%}<button>{{ t("save") }}</button>{%- endif -%}
</form></div>"#
)]
struct PolicyPage<'a> {
    lang: Lang,
    csrf: &'a str,
    rows: Vec<TierRow>,
    fee: String,
    editable: bool,
    updated_by: Option<String>,
    updated_at: String,
    error: Option<String>,
}

words_in_lang_field!(PolicyPage<'_>);

/// Rows the policy form offers (the tiers, then empty rows).
const POLICY_ROWS: usize = 6;

async fn policy_page_with(
    st: &AppState,
    staff: &Staff,
    lang: Lang,
    shown: Option<(Vec<TierRow>, String)>,
    error: Option<String>,
) -> Result<Html<String>, ApiError> {
    let v = st.store.refund_policy().await?;
    let (mut rows, fee) = shown.unwrap_or_else(|| {
        (
            v.policy
                .tiers
                .iter()
                .map(|t| TierRow {
                    max_used: t.max_used_pct.to_string(),
                    keep: t.keep_pct.to_string(),
                })
                .collect(),
            money(v.policy.fee_cents),
        )
    });
    while rows.len() < POLICY_ROWS {
        rows.push(TierRow {
            max_used: String::new(),
            keep: String::new(),
        });
    }
    let body = PolicyPage {
        lang,
        csrf: staff.csrf.as_deref().unwrap_or(""),
        rows,
        fee,
        editable: staff.require(roles::ADMIN).is_ok() && staff.is_all_campuses(),
        updated_by: v.updated_by,
        updated_at: v
            .updated_at
            .map(|t| local(st, t).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default(),
        error,
    };
    page(lang, staff, t(lang, "refund_policy"), body)
}

pub(super) async fn policy_page(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
) -> Result<Html<String>, ApiError> {
    policy_page_with(&st, &staff, lang, None, None).await
}

/// The policy form's tiers and fee, read from its fields (`max0`/`keep0` … and `fee`).
/// The value of field `k` of a posted form ("" when absent).
fn field<'a>(form: &'a [(String, String)], k: &str) -> &'a str {
    form.iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

fn policy_of(form: &[(String, String)]) -> Result<RefundPolicy, String> {
    let get = |k: &str| field(form, k).trim().to_string();
    let mut tiers = Vec::new();
    for i in 0..POLICY_ROWS {
        let (m, k) = (get(&format!("max{i}")), get(&format!("keep{i}")));
        if m.is_empty() && k.is_empty() {
            continue;
        }
        let pct = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("tiers: row {}: a whole percentage from 0 to 100", i + 1))
        };
        tiers.push(RefundTier {
            max_used_pct: pct(&m)?,
            keep_pct: pct(&k)?,
        });
    }
    let fee = get("fee");
    let fee_cents = if fee.is_empty() {
        0
    } else {
        parse_money("fee", &fee)?
    };
    let p = RefundPolicy { tiers, fee_cents };
    p.check().map_err(|e| e.to_string())?;
    Ok(p)
}

pub(super) async fn policy_form(
    State(st): State<AppState>,
    Extension(staff): Extension<Staff>,
    Extension(lang): Extension<Lang>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_csrf(&staff, field(&form, "_csrf"))?;
    match policy_of(&form) {
        Ok(p) => {
            v1::set_policy_as(&st, &staff, &p).await?;
            Ok(Redirect::to("/app/refund-policy").into_response())
        }
        Err(msg) => {
            let rows = (0..POLICY_ROWS)
                .map(|i| TierRow {
                    max_used: field(&form, &format!("max{i}")).to_string(),
                    keep: field(&form, &format!("keep{i}")).to_string(),
                })
                .collect();
            let fee = field(&form, "fee").to_string();
            Ok(
                policy_page_with(&st, &staff, lang, Some((rows, fee)), Some(msg))
                    .await?
                    .into_response(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_text_round_trips() {
        assert_eq!(parse_money("x", "2400"), Ok(240_000));
        assert_eq!(parse_money("x", "2,400.5"), Ok(240_050));
        assert_eq!(parse_money("x", "¥ 2400.50"), Ok(240_050));
        assert_eq!(parse_money("x", "0.05"), Ok(5));
        for bad in ["", "-1", "1.234", "abc", "1e5", ".5", "99999999999999999"] {
            assert!(parse_money("x", bad).is_err(), "{bad}");
        }
    }

    /// Every word of the money pages (the `t("…")` keys of this file and of the finance page,
    /// and the payment methods, refund states and report groups they show) exists in both
    /// languages.
    #[test]
    fn every_word_of_the_money_pages_is_in_both_languages() {
        let mut keys: Vec<String> = Vec::new();
        for src in [include_str!("sales.rs"), include_str!("finance.rs")] {
            let mut rest = src;
            while let Some(i) = rest.find("t(\"") {
                // `t(` itself, not the end of another name (`int(`)
                let standalone = i == 0
                    || !rest.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && rest.as_bytes()[i - 1] != b'_';
                rest = &rest[i + 3..];
                let k = rest.split('"').next().unwrap_or("");
                if standalone
                    && !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                {
                    keys.push(k.to_string());
                }
            }
        }
        assert!(keys.len() > 40, "{}", keys.len());
        keys.extend(METHODS.iter().map(|m| m.as_str().to_string()));
        keys.extend(RefundState::ALL.iter().map(|s| s.as_str().to_string()));
        keys.extend(["by_class", "by_teacher", "by_campus"].map(String::from));
        for k in &keys {
            for lang in [Lang::En, Lang::Zh] {
                assert_ne!(t(lang, k), "?", "{k} has no {lang:?} word");
            }
        }
    }

    #[test]
    fn a_form_error_names_its_field_in_the_readers_language() {
        let zh = in_words(
            Lang::Zh,
            "invalid discount_reason: discount: a reason is required",
        );
        assert!(
            zh.starts_with("优惠原因：") || zh.starts_with("优惠原因:"),
            "{zh}"
        );
        assert!(zh.contains("a reason is required"));
        let en = in_words(Lang::En, "lessons: enter a whole number");
        assert!(en.starts_with("Lessons: "), "{en}");
        assert!(in_words(Lang::En, "something else").contains("something else"));
    }

    #[test]
    fn the_policy_form_reads_rows_and_refuses_a_falling_share() {
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let p = policy_of(&f(&[
            ("max0", "0"),
            ("keep0", "10"),
            ("max1", "50"),
            ("keep1", "20"),
            ("fee", "30"),
        ]))
        .unwrap();
        assert_eq!(p.tiers.len(), 2);
        assert_eq!(p.fee_cents, 3_000);
        assert!(policy_of(&f(&[
            ("max0", "0"),
            ("keep0", "20"),
            ("max1", "50"),
            ("keep1", "10")
        ]))
        .is_err());
        assert!(policy_of(&f(&[("max0", "x"), ("keep0", "1")])).is_err());
    }
}
