//! Sales: an order sells one or more packages (paid lessons, gift lessons, list price,
//! discount with its reason), takes a first payment and plans the rest in instalments; later
//! payments are recorded against the order. Prices follow the domain's money rules
//! ([`rollcall_domain::money`]): the package's price paid is its line's amount due, so each
//! consumed lesson earns the paid price and refunds are computed on what was paid.

use super::base::{audit, check_id, from_ms, lock_student, ms, parse_enum, require};
use super::packages::{insert_package_row, PackageRow, SaleInfo};
use super::Store;
use crate::{LedgerError, NewPackage, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_domain::ledger::*;
use rollcall_domain::money::{check_instalments, price_line, Discount, Instalment, SaleLine};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{AnyConnection, Row};

/// Most package lines one order may hold.
pub const MAX_ORDER_LINES: usize = 10;
/// Most instalments one order may plan.
pub const MAX_INSTALMENTS: usize = 24;

/// One package line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub package_id: String,
    /// `None`: usable on every campus.
    pub campus_id: Option<String>,
    /// Paid lessons.
    pub lessons: i64,
    /// Gift lessons: consumed last, never revenue, never refunded.
    #[serde(default)]
    pub gift_lessons: i64,
    /// The whole line's list price.
    pub list_price_cents: Cents,
    #[serde(default = "no_discount")]
    pub discount: Discount,
    /// Required with a discount.
    #[serde(default)]
    pub discount_reason: Option<String>,
    pub expires_at: DateTime<Utc>,
}

fn no_discount() -> Discount {
    Discount::None
}

/// A payment received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPayment {
    pub amount_cents: Cents,
    pub method: PaymentMethod,
    /// The payment's reference (WeChat Pay/Alipay transaction number, card slip, transfer id).
    #[serde(default)]
    pub reference: Option<String>,
    /// Makes a resubmitted payment a no-op (a form's one-time key); defaults to the order's
    /// next payment number.
    #[serde(default)]
    pub key: Option<String>,
}

/// An order to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub id: String,
    pub student_id: String,
    #[serde(default)]
    pub salesperson: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    pub lines: Vec<OrderLine>,
    /// Paid at the sale (none: everything is planned in instalments).
    #[serde(default)]
    pub payment: Option<NewPayment>,
    /// What is left after the first payment, by due date (the school's local dates).
    #[serde(default)]
    pub instalments: Vec<Instalment<NaiveDate>>,
    /// When it was sold (the packages are bought then).
    pub at: DateTime<Utc>,
}

/// A package line as sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderLineView {
    pub package_id: String,
    pub campus_id: Option<String>,
    pub lessons: i64,
    pub gift_lessons: i64,
    pub list_price_cents: Cents,
    pub discount_cents: Cents,
    pub discount_reason: Option<String>,
    /// List price less discount: the package's price paid.
    pub due_cents: Cents,
    pub expires_at: DateTime<Utc>,
}

/// A payment recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentView {
    pub id: i64,
    pub order_id: String,
    pub student_id: String,
    pub campus_id: Option<String>,
    pub amount_cents: Cents,
    pub method: PaymentMethod,
    pub reference: Option<String>,
    pub received_at: DateTime<Utc>,
    pub received_by: String,
}

/// One planned instalment and whether the payments so far cover it (in due-date order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalmentView {
    pub n: i64,
    pub due_on: NaiveDate,
    pub amount_cents: Cents,
    pub covered: bool,
}

/// An order with its lines, payments and plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderView {
    pub id: String,
    pub student_id: String,
    pub campus_id: Option<String>,
    pub salesperson: Option<String>,
    pub note: Option<String>,
    pub list_cents: Cents,
    pub discount_cents: Cents,
    pub due_cents: Cents,
    pub paid_cents: Cents,
    pub outstanding_cents: Cents,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub lines: Vec<OrderLineView>,
    pub payments: Vec<PaymentView>,
    pub instalments: Vec<InstalmentView>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> LedgerError {
    LedgerError::Invalid {
        field,
        message: message.into(),
    }
}

fn check_text(field: &'static str, v: Option<&str>, max: usize) -> Result<()> {
    match v {
        Some(t) if t.chars().count() > max || t.chars().any(char::is_control) => Err(invalid(
            field,
            format!("at most {max} characters, no control characters"),
        )),
        _ => Ok(()),
    }
}

fn check_payment(p: &NewPayment) -> Result<()> {
    if p.amount_cents <= 0 || p.amount_cents > rollcall_domain::money::MAX_AMOUNT_CENTS {
        return Err(invalid("amount", "must be more than zero"));
    }
    check_text("reference", p.reference.as_deref(), 100)?;
    check_text("key", p.key.as_deref(), 100)
}

#[allow(clippy::too_many_arguments)]
async fn insert_payment(
    c: &mut AnyConnection,
    school: &str,
    order: &str,
    student: &str,
    campus: Option<&str>,
    p: &NewPayment,
    actor: &str,
    at: i64,
) -> Result<Option<i64>> {
    let key = match &p.key {
        Some(k) => format!("payment:{order}:{k}"),
        None => {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM payments WHERE school_id = $1 AND order_id = $2",
            )
            .bind(school)
            .bind(order)
            .fetch_one(&mut *c)
            .await?;
            format!("payment:{order}:#{}", n + 1)
        }
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO payments (school_id, order_id, student_id, campus_id, amount_cents, method, reference, received_at, received_by, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (school_id, idempotency_key) DO NOTHING RETURNING seq",
    )
    .bind(school)
    .bind(order)
    .bind(student)
    .bind(campus)
    .bind(p.amount_cents)
    .bind(p.method.as_str())
    .bind(p.reference.as_deref().map(str::trim).filter(|r| !r.is_empty()))
    .bind(at)
    .bind(actor)
    .bind(&key)
    .fetch_optional(&mut *c)
    .await?;
    if let Some(id) = id {
        audit(
            c,
            school,
            actor,
            "payment",
            "order",
            order,
            None,
            Some(json!({"payment": id, "amount_cents": p.amount_cents, "method": p.method, "reference": p.reference})),
            at,
        )
        .await?;
    }
    Ok(id)
}

fn payment_from_row(r: &sqlx::any::AnyRow) -> Result<PaymentView> {
    Ok(PaymentView {
        id: r.try_get(0)?,
        order_id: r.try_get(1)?,
        student_id: r.try_get(2)?,
        campus_id: r.try_get(3)?,
        amount_cents: r.try_get(4)?,
        method: parse_enum(
            &r.try_get::<String, _>(5)?,
            PaymentMethod::parse,
            "payment method",
        )?,
        reference: r.try_get(6)?,
        received_at: from_ms(r.try_get(7)?),
        received_by: r.try_get(8)?,
    })
}

const PAYMENT_COLS: &str =
    "seq, order_id, student_id, campus_id, amount_cents, method, reference, received_at, received_by";

impl Store {
    /// Records an order: its packages (each with its purchase entry at the line's amount due),
    /// the first payment and the instalment plan for the rest, in one transaction, audited.
    /// Refused, with the field to fix, when a line's price or discount is wrong, the payment is
    /// more than is due, or the plan does not add up to exactly what is left.
    pub async fn sell(&self, o: &NewOrder, actor: &str) -> Result<OrderView> {
        check_id("order", &o.id)?;
        if o.lines.is_empty() || o.lines.len() > MAX_ORDER_LINES {
            return Err(invalid(
                "lines",
                format!("an order sells 1 to {MAX_ORDER_LINES} packages"),
            ));
        }
        check_text("salesperson", o.salesperson.as_deref(), 100)?;
        check_text("note", o.note.as_deref(), 500)?;
        let mut priced = Vec::with_capacity(o.lines.len());
        for l in &o.lines {
            check_id("package", &l.package_id)?;
            check_text("discount_reason", l.discount_reason.as_deref(), 200)?;
            if l.lessons == 0 {
                // a package holds paid lessons (gift-only packages are an adjustment)
                return Err(invalid(
                    "lessons",
                    "a package sells at least one paid lesson",
                ));
            }
            let p = price_line(&SaleLine {
                lessons: l.lessons,
                gift_lessons: l.gift_lessons,
                list_price_cents: l.list_price_cents,
                discount: l.discount,
                discount_reason: l.discount_reason.clone(),
            })
            .map_err(|e| invalid(money_field(&e), e.to_string()))?;
            if l.expires_at <= o.at {
                return Err(invalid(
                    "expires_at",
                    "the package would expire before it is sold",
                ));
            }
            priced.push(p);
        }
        let list: Cents = priced.iter().map(|p| p.list_price_cents).sum();
        let discount: Cents = priced.iter().map(|p| p.discount_cents).sum();
        let due: Cents = priced.iter().map(|p| p.due_cents).sum();
        let paid_now = match &o.payment {
            Some(p) => {
                check_payment(p)?;
                p.amount_cents
            }
            None => 0,
        };
        if paid_now > due {
            return Err(invalid("amount", format!("more than the {due} cents due")));
        }
        let rest = due - paid_now;
        if o.instalments.len() > MAX_INSTALMENTS {
            return Err(invalid(
                "instalments",
                format!("at most {MAX_INSTALMENTS} instalments"),
            ));
        }
        if rest > 0 || !o.instalments.is_empty() {
            check_instalments(rest, &o.instalments)
                .map_err(|e| invalid("instalments", e.to_string()))?;
            let today = self.local_date(o.at);
            if o.instalments.first().is_some_and(|i| i.due_on < today) {
                return Err(invalid("instalments", "a due date is in the past"));
            }
        }
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let c = w.conn();
        lock_student(&mut *c, &school, &o.student_id).await?;
        if let Some(sp) = o
            .salesperson
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            // a staff username: free text would let a typo split the sales report
            let known: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM staff_accounts WHERE school_id = $1 AND username = $2",
            )
            .bind(&school)
            .bind(sp)
            .fetch_one(&mut *c)
            .await?;
            if known == 0 {
                return Err(invalid("salesperson", format!("no staff account {sp:?}")));
            }
        }
        let campus = match o.lines.iter().find_map(|l| l.campus_id.clone()) {
            Some(c) => Some(c),
            None => {
                sqlx::query_scalar::<_, Option<String>>(
                    "SELECT home_campus_id FROM students WHERE school_id = $1 AND id = $2",
                )
                .bind(&school)
                .bind(&o.student_id)
                .fetch_one(&mut *c)
                .await?
            }
        };
        let now = ms(self.now());
        sqlx::query(
            "INSERT INTO orders (school_id, id, student_id, campus_id, salesperson, list_cents, discount_cents, due_cents, note, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&school)
        .bind(&o.id)
        .bind(&o.student_id)
        .bind(&campus)
        .bind(o.salesperson.as_deref().map(str::trim).filter(|s| !s.is_empty()))
        .bind(list)
        .bind(discount)
        .bind(due)
        .bind(o.note.as_deref().map(str::trim).filter(|s| !s.is_empty()))
        .bind(ms(o.at))
        .bind(actor)
        .execute(&mut *c)
        .await?;
        for (l, p) in o.lines.iter().zip(&priced) {
            let pkg = NewPackage {
                id: l.package_id.clone(),
                student_id: o.student_id.clone(),
                campus_id: l.campus_id.clone(),
                lessons: l.lessons,
                // the list price per lesson, for reading; money follows the price paid
                unit_price_cents: l.list_price_cents / l.lessons.max(1),
                price_paid_cents: Some(p.due_cents),
                bought_at: o.at,
                expires_at: l.expires_at,
            };
            let row = PackageRow {
                package: &pkg,
                gift_lessons: l.gift_lessons,
                paid_cents: p.due_cents,
                sale: Some(SaleInfo {
                    order_id: &o.id,
                    list_price_cents: p.list_price_cents,
                    discount_cents: p.discount_cents,
                    discount_reason: l
                        .discount_reason
                        .as_deref()
                        .filter(|_| p.discount_cents > 0),
                }),
            };
            insert_package_row(&mut *c, &school, &row, actor).await?;
        }
        for (n, i) in o.instalments.iter().enumerate() {
            sqlx::query(
                "INSERT INTO instalments (school_id, order_id, n, due_on, amount_cents) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&school)
            .bind(&o.id)
            .bind(n as i64 + 1)
            .bind(i.due_on.to_string())
            .bind(i.amount_cents)
            .execute(&mut *c)
            .await?;
        }
        audit(
            &mut *c,
            &school,
            actor,
            "sell",
            "order",
            &o.id,
            None,
            Some(json!({"order": o, "list_cents": list, "discount_cents": discount, "due_cents": due})),
            now,
        )
        .await?;
        if let Some(p) = &o.payment {
            insert_payment(
                &mut *c,
                &school,
                &o.id,
                &o.student_id,
                campus.as_deref(),
                p,
                actor,
                ms(o.at),
            )
            .await?;
        }
        let v = order_in(&mut *c, &school, &o.id).await?;
        w.commit().await?;
        Ok(v)
    }

    /// Records a payment against an order (at most what is outstanding). Returns the order
    /// after it, and whether the payment was new (a resubmitted key changes nothing).
    pub async fn record_payment(
        &self,
        order: &str,
        p: &NewPayment,
        actor: &str,
    ) -> Result<(OrderView, bool)> {
        check_payment(p)?;
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let c = w.conn();
        let before = order_in(&mut *c, &school, order).await?;
        lock_student(&mut *c, &school, &before.student_id).await?;
        if let Some(k) = &p.key {
            let seen: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM payments WHERE school_id = $1 AND idempotency_key = $2",
            )
            .bind(&school)
            .bind(format!("payment:{order}:{k}"))
            .fetch_one(&mut *c)
            .await?;
            if seen > 0 {
                return Ok((before, false));
            }
        }
        if p.amount_cents > before.outstanding_cents {
            return Err(invalid(
                "amount",
                format!(
                    "more than the {} cents outstanding",
                    before.outstanding_cents
                ),
            ));
        }
        let now = ms(self.now());
        let id = insert_payment(
            &mut *c,
            &school,
            order,
            &before.student_id,
            before.campus_id.as_deref(),
            p,
            actor,
            now,
        )
        .await?;
        let v = order_in(&mut *c, &school, order).await?;
        w.commit().await?;
        Ok((v, id.is_some()))
    }

    /// One order with its lines, payments and plan.
    pub async fn order(&self, id: &str) -> Result<OrderView> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        order_in(&mut c, &school, id).await
    }

    /// A student's orders, newest first.
    pub async fn orders_of(&self, student: &str) -> Result<Vec<OrderView>> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        require(&mut c, "student", &school, student).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM orders WHERE school_id = $1 AND student_id = $2 ORDER BY created_at DESC, id",
        )
        .bind(&school)
        .bind(student)
        .fetch_all(&mut *c)
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(order_in(&mut c, &school, &id).await?);
        }
        Ok(out)
    }

    /// Payments received in `[from, to)`, oldest first.
    pub async fn payments_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PaymentView>> {
        let school = self.need_school()?.to_string();
        let rows = sqlx::query(&format!(
            "SELECT {PAYMENT_COLS} FROM payments WHERE school_id = $1 AND received_at >= $2 AND received_at < $3 ORDER BY received_at, seq"
        ))
        .bind(&school)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment_from_row).collect()
    }

    /// The school's local calendar date at `t`.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        (t + Duration::minutes(self.tz_offset_minutes)).date_naive()
    }
}

/// The form field a money rule's refusal belongs to.
fn money_field(e: &rollcall_domain::money::MoneyError) -> &'static str {
    use rollcall_domain::money::MoneyError as M;
    match e {
        M::OutOfRange { field, .. } => match *field {
            "lessons" => "lessons",
            "gift_lessons" => "gift_lessons",
            "list_price" => "list_price",
            "discount" => "discount",
            _ => "lines",
        },
        M::DiscountOverPrice => "discount",
        M::DiscountWithoutReason => "discount_reason",
        M::InstalmentsDontAddUp { .. } | M::InstalmentsOutOfOrder => "instalments",
        M::BadTiers(_) => "tiers",
    }
}

pub(crate) async fn order_in(c: &mut AnyConnection, school: &str, id: &str) -> Result<OrderView> {
    let r = sqlx::query(
        "SELECT id, student_id, campus_id, salesperson, note, list_cents, discount_cents, due_cents, created_at, created_by FROM orders WHERE school_id = $1 AND id = $2",
    )
    .bind(school)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .ok_or_else(|| LedgerError::NotFound {
        entity: "order",
        id: id.into(),
    })?;
    let lines = sqlx::query(
        "SELECT id, campus_id, lessons_bought, gift_lessons, COALESCE(list_price_cents, price_paid_cents), discount_cents, discount_reason, price_paid_cents, expires_at \
         FROM packages WHERE school_id = $1 AND order_id = $2 ORDER BY id",
    )
    .bind(school)
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    let lines = lines
        .iter()
        .map(|l| {
            Ok(OrderLineView {
                package_id: l.try_get(0)?,
                campus_id: l.try_get(1)?,
                lessons: l.try_get(2)?,
                gift_lessons: l.try_get(3)?,
                list_price_cents: l.try_get(4)?,
                discount_cents: l.try_get(5)?,
                discount_reason: l.try_get(6)?,
                due_cents: l.try_get(7)?,
                expires_at: from_ms(l.try_get(8)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let payments = sqlx::query(&format!(
        "SELECT {PAYMENT_COLS} FROM payments WHERE school_id = $1 AND order_id = $2 ORDER BY received_at, seq"
    ))
    .bind(school)
    .bind(id)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(payment_from_row)
    .collect::<Result<Vec<_>>>()?;
    let due: Cents = r.try_get(7)?;
    let paid: Cents = payments.iter().map(|p| p.amount_cents).sum();
    let plan = sqlx::query(
        "SELECT n, due_on, amount_cents FROM instalments WHERE school_id = $1 AND order_id = $2 ORDER BY n",
    )
    .bind(school)
    .bind(id)
    .fetch_all(&mut *c)
    .await?;
    let mut planned: Cents = 0;
    for p in &plan {
        planned += p.try_get::<i64, _>(2)?;
    }
    // the payments cover the amount due at the sale first, then the instalments in order
    let mut covered_to = paid - (due - planned);
    let mut instalments = Vec::with_capacity(plan.len());
    for p in &plan {
        let amount: Cents = p.try_get(2)?;
        let due_on: String = p.try_get(1)?;
        instalments.push(InstalmentView {
            n: p.try_get(0)?,
            due_on: due_on
                .parse()
                .map_err(|_| LedgerError::Corrupt(format!("instalment date {due_on:?}")))?,
            amount_cents: amount,
            covered: covered_to >= amount,
        });
        covered_to -= amount;
    }
    Ok(OrderView {
        id: r.try_get(0)?,
        student_id: r.try_get(1)?,
        campus_id: r.try_get(2)?,
        salesperson: r.try_get(3)?,
        note: r.try_get(4)?,
        list_cents: r.try_get(5)?,
        discount_cents: r.try_get(6)?,
        due_cents: due,
        paid_cents: paid,
        outstanding_cents: (due - paid).max(0),
        created_at: from_ms(r.try_get(8)?),
        created_by: r.try_get(9)?,
        lines,
        payments,
        instalments,
    })
}
