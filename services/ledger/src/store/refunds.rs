//! Refunds: the school's refund policy table (editable, audited), refund requests asked by one
//! staff member and approved or rejected by another, and the refund entry an approval books.
//! The computation itself is the domain's ([`rollcall_domain::money::compute_refund`] through
//! [`quote_refund`]): on what was paid and not yet earned, gifts never refunded.

use super::base::{append_entry, audit, from_ms, lock_student, ms, parse_enum, parse_json};
use super::packages::load_packages;
use super::Store;
use crate::{LedgerError, Result};
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use rollcall_domain::money::RefundPolicy;
use serde::Serialize;
use serde_json::json;
use sqlx::{AnyConnection, Row};

/// The school's refund policy and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundPolicyView {
    pub policy: RefundPolicy,
    /// `None`: the school has not edited its table; the policy is its starting rule's.
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

/// A refund request and, once decided, its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefundRequestView {
    pub id: i64,
    pub student_id: String,
    pub package_id: String,
    pub reason: String,
    /// How the money is to be paid back.
    pub method: PaymentMethod,
    pub state: RefundState,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// The computation: at the request while pending, as booked once approved.
    pub quote: RefundQuote,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    /// The amount booked (approved requests).
    pub refund_cents: Option<Cents>,
}

const REQUEST_COLS: &str = "seq, student_id, package_id, reason, method, state, requested_by, requested_at, quote_json, decided_by, decided_at, decision_note, refund_cents";

fn request_from_row(r: &sqlx::any::AnyRow) -> Result<RefundRequestView> {
    Ok(RefundRequestView {
        id: r.try_get(0)?,
        student_id: r.try_get(1)?,
        package_id: r.try_get(2)?,
        reason: r.try_get(3)?,
        method: parse_enum(
            &r.try_get::<String, _>(4)?,
            PaymentMethod::parse,
            "payment method",
        )?,
        state: parse_enum(
            &r.try_get::<String, _>(5)?,
            RefundState::parse,
            "refund state",
        )?,
        requested_by: r.try_get(6)?,
        requested_at: from_ms(r.try_get(7)?),
        quote: parse_json(&r.try_get::<String, _>(8)?, "refund quote")?,
        decided_by: r.try_get(9)?,
        decided_at: r.try_get::<Option<i64>, _>(10)?.map(from_ms),
        decision_note: r.try_get(11)?,
        refund_cents: r.try_get(12)?,
    })
}

async fn load_policy(
    c: &mut AnyConnection,
    school: &str,
    fallback: &RefundRule,
) -> Result<RefundPolicyView> {
    let row = sqlx::query(
        "SELECT policy_json, updated_at, updated_by FROM refund_policies WHERE school_id = $1",
    )
    .bind(school)
    .fetch_optional(&mut *c)
    .await?;
    Ok(match row {
        Some(r) => RefundPolicyView {
            policy: parse_json(&r.try_get::<String, _>(0)?, "refund policy")?,
            updated_at: Some(from_ms(r.try_get(1)?)),
            updated_by: Some(r.try_get(2)?),
        },
        None => RefundPolicyView {
            policy: fallback.to_policy(),
            updated_at: None,
            updated_by: None,
        },
    })
}

/// One of `student`'s packages with its balance and use, or `NotFound`.
async fn package_of(
    c: &mut AnyConnection,
    school: &str,
    student: &str,
    package: &str,
) -> Result<PackageState> {
    let (pkgs, _) = load_packages(c, school, student).await?;
    pkgs.into_iter()
        .find(|p| p.package_id == package)
        .ok_or_else(|| LedgerError::NotFound {
            entity: "package",
            id: package.into(),
        })
}

fn not_refundable(package: &str, q: &RefundQuote) -> LedgerError {
    let why = match q.rule {
        RefundCase::TooMuchConsumed => "too much of it is used",
        RefundCase::NothingLeft => "nothing is left on it",
        _ => "the policy gives nothing back",
    };
    LedgerError::NotRefundable(package.into(), why.into())
}

impl Store {
    /// The school's refund policy (its edited table, or its starting rule's).
    pub async fn refund_policy(&self) -> Result<RefundPolicyView> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        load_policy(&mut c, &school, &self.policy.refund).await
    }

    /// Replaces the school's refund policy (checked: tiers rising, the share kept never
    /// falling, percentages and fee in range), audited with the table before and after.
    pub async fn set_refund_policy(&self, p: &RefundPolicy, actor: &str) -> Result<()> {
        p.check().map_err(|e| LedgerError::Invalid {
            field: "tiers",
            message: e.to_string(),
        })?;
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let before = load_policy(w.conn(), &school, &self.policy.refund).await?;
        let now = ms(self.now());
        let text = serde_json::to_string(p).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO refund_policies (school_id, policy_json, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (school_id) DO UPDATE SET policy_json = excluded.policy_json, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        )
        .bind(&school)
        .bind(&text)
        .bind(now)
        .bind(actor)
        .execute(w.conn())
        .await?;
        audit(
            w.conn(),
            &school,
            actor,
            "set_refund_policy",
            "school",
            &school,
            Some(json!(before.policy)),
            Some(json!(p)),
            now,
        )
        .await?;
        w.commit().await
    }

    /// What refunding one of `student`'s packages would return now, under the school's policy.
    pub async fn quote_refund(&self, student: &str, package: &str) -> Result<RefundQuote> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        let policy = load_policy(&mut c, &school, &self.policy.refund).await?;
        let p = package_of(&mut c, &school, student, package).await?;
        Ok(quote_refund(&policy.policy, &p))
    }

    /// Asks for a refund of a package (reason required); refused when the policy gives nothing
    /// or a request for the package is already pending. Nothing is booked until a second
    /// person approves ([`Store::decide_refund`]).
    pub async fn request_refund(
        &self,
        student: &str,
        package: &str,
        reason: &str,
        method: PaymentMethod,
        actor: &str,
    ) -> Result<RefundRequestView> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(LedgerError::Invalid {
                field: "reason",
                message: "a reason of 1 to 500 characters is required".into(),
            });
        }
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        lock_student(w.conn(), &school, student).await?;
        let policy = load_policy(w.conn(), &school, &self.policy.refund).await?;
        let p = package_of(w.conn(), &school, student, package).await?;
        let q = quote_refund(&policy.policy, &p);
        if !q.eligible {
            return Err(not_refundable(package, &q));
        }
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM refund_requests WHERE school_id = $1 AND package_id = $2 AND state = 'pending'",
        )
        .bind(&school)
        .bind(package)
        .fetch_one(w.conn())
        .await?;
        if pending > 0 {
            return Err(LedgerError::Conflict(format!(
                "a refund of package {package:?} is already waiting for approval"
            )));
        }
        let now = ms(self.now());
        let quote = serde_json::to_string(&q).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO refund_requests (school_id, student_id, package_id, reason, method, state, requested_by, requested_at, quote_json) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8) RETURNING seq",
        )
        .bind(&school)
        .bind(student)
        .bind(package)
        .bind(reason)
        .bind(method.as_str())
        .bind(actor)
        .bind(now)
        .bind(&quote)
        .fetch_one(w.conn())
        .await?;
        audit(
            w.conn(),
            &school,
            actor,
            "request_refund",
            "package",
            package,
            None,
            Some(json!({"request": id, "student": student, "reason": reason, "method": method, "quote": q})),
            now,
        )
        .await?;
        let v = self.refund_request_in(w.conn(), &school, id).await?;
        w.commit().await?;
        Ok(v)
    }

    async fn refund_request_in(
        &self,
        c: &mut AnyConnection,
        school: &str,
        id: i64,
    ) -> Result<RefundRequestView> {
        let r = sqlx::query(&format!(
            "SELECT {REQUEST_COLS} FROM refund_requests WHERE school_id = $1 AND seq = $2"
        ))
        .bind(school)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or_else(|| LedgerError::NotFound {
            entity: "refund request",
            id: id.to_string(),
        })?;
        request_from_row(&r)
    }

    /// One refund request.
    pub async fn refund_request(&self, id: i64) -> Result<RefundRequestView> {
        let school = self.need_school()?.to_string();
        let mut c = self.pool.acquire().await?;
        self.refund_request_in(&mut c, &school, id).await
    }

    /// Refund requests, newest first (`state`: only those).
    pub async fn refund_requests(
        &self,
        state: Option<RefundState>,
        student: Option<&str>,
    ) -> Result<Vec<RefundRequestView>> {
        let school = self.need_school()?.to_string();
        let rows = sqlx::query(&format!(
            "SELECT {REQUEST_COLS} FROM refund_requests WHERE school_id = $1 AND ($2 = '' OR state = $2) AND ($3 = '' OR student_id = $3) ORDER BY seq DESC LIMIT 500"
        ))
        .bind(&school)
        .bind(state.map_or("", |s| s.as_str()))
        .bind(student.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request_from_row).collect()
    }

    /// Approves or rejects a pending refund request. The approver must not be the person who
    /// asked (the API lets only managers and admins decide). An approval recomputes the refund
    /// on the package as it is now and books it (a refund entry removing the units left) in
    /// the same transaction; refused, nothing is booked, when the policy no longer gives
    /// anything.
    pub async fn decide_refund(
        &self,
        id: i64,
        approve: bool,
        actor: &str,
        note: Option<&str>,
    ) -> Result<RefundRequestView> {
        let school = self.need_school()?.to_string();
        let mut w = self.write().await?;
        let req = self.refund_request_in(w.conn(), &school, id).await?;
        if req.state != RefundState::Pending {
            return Err(LedgerError::Conflict(format!(
                "refund request {id} is already {}",
                req.state
            )));
        }
        if req.requested_by == actor {
            return Err(LedgerError::Invalid {
                field: "approver",
                message: "a refund is decided by someone other than the person who asked".into(),
            });
        }
        lock_student(w.conn(), &school, &req.student_id).await?;
        let now = ms(self.now());
        let note = note.map(str::trim).filter(|n| !n.is_empty());
        let (state, quote, amount) = if approve {
            let policy = load_policy(w.conn(), &school, &self.policy.refund).await?;
            let p = package_of(w.conn(), &school, &req.student_id, &req.package_id).await?;
            let q = quote_refund(&policy.policy, &p);
            if !q.eligible {
                return Err(not_refundable(&req.package_id, &q));
            }
            let e = Entry {
                student_id: req.student_id.clone(),
                kind: EntryKind::Refund,
                package_id: Some(req.package_id.clone()),
                lesson_id: None,
                units: -q.units,
                amount_cents: -q.refund_cents,
                idempotency_key: format!("refund:{}", req.package_id),
            };
            let note = format!("refund request {id}: {}", req.reason);
            if !append_entry(w.conn(), &school, &e, now, actor, Some(&note)).await? {
                return Err(LedgerError::Conflict(format!(
                    "package {:?} was refunded already",
                    req.package_id
                )));
            }
            (RefundState::Approved, q, Some(q.refund_cents))
        } else {
            (RefundState::Rejected, req.quote, None)
        };
        let quote_text =
            serde_json::to_string(&quote).map_err(|e| LedgerError::Corrupt(e.to_string()))?;
        let done = sqlx::query(
            "UPDATE refund_requests SET state = $1, decided_by = $2, decided_at = $3, decision_note = $4, refund_cents = $5, quote_json = $6 \
             WHERE school_id = $7 AND seq = $8 AND state = 'pending'",
        )
        .bind(state.as_str())
        .bind(actor)
        .bind(now)
        .bind(note)
        .bind(amount)
        .bind(&quote_text)
        .bind(&school)
        .bind(id)
        .execute(w.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Err(LedgerError::Conflict(format!(
                "refund request {id} was decided meanwhile"
            )));
        }
        audit(
            w.conn(),
            &school,
            actor,
            if approve {
                "approve_refund"
            } else {
                "reject_refund"
            },
            "refund_request",
            &id.to_string(),
            Some(json!({"state": req.state, "quote": req.quote})),
            Some(json!({"state": state, "quote": quote, "refund_cents": amount, "note": note})),
            now,
        )
        .await?;
        let v = self.refund_request_in(w.conn(), &school, id).await?;
        w.commit().await?;
        Ok(v)
    }
}
