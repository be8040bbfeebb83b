//! Finance reports: cash received and paid back per local day, campus and payment method;
//! lessons taught per teacher (for a pay statement at a per-lesson or per-student-lesson
//! rate). Revenue recognised is the consumption report's ([`Store::report_consumption`]: the
//! paid price of each lesson used) and the prepaid liability the outstanding report's
//! ([`Store::report_outstanding`]).

use crate::store::{from_ms, ms, parse_enum, Store};
use crate::Result;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rollcall_domain::ledger::{AttendanceStatus, Cents, PaymentMethod};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// Money in and out on one local day at one campus by one method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashRow {
    pub day: NaiveDate,
    pub campus_id: Option<String>,
    pub method: PaymentMethod,
    pub received_cents: Cents,
    pub refunded_cents: Cents,
}

/// Cash received and paid back over `[from, to)`, with totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashReport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: Vec<CashRow>,
    pub received_cents: Cents,
    pub refunded_cents: Cents,
    /// Received less refunded.
    pub net_cents: Cents,
}

/// Lessons one teacher taught over a range: lessons held (at least one student attended) and
/// student-lessons (each attending student once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TeachingRow {
    pub teacher: String,
    pub lessons: i64,
    pub student_lessons: i64,
}

impl Store {
    /// Cash received (payments) and paid back (approved refunds) over `[from, to)`, per the
    /// school's local day, campus and method.
    pub async fn report_cash(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<CashReport> {
        let school = self.school_id().to_string();
        let payments = sqlx::query(
            "SELECT received_at, campus_id, method, amount_cents FROM payments WHERE school_id = $1 AND received_at >= $2 AND received_at < $3",
        )
        .bind(&school)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let refunds = sqlx::query(
            "SELECT r.decided_at, s.home_campus_id, r.method, r.refund_cents FROM refund_requests r \
             JOIN students s ON s.school_id = r.school_id AND s.id = r.student_id \
             WHERE r.school_id = $1 AND r.state = 'approved' AND r.decided_at >= $2 AND r.decided_at < $3",
        )
        .bind(&school)
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let off = Duration::minutes(self.tz_offset_minutes());
        let mut m: BTreeMap<(NaiveDate, Option<String>, PaymentMethod), (Cents, Cents)> =
            BTreeMap::new();
        for (rows, refund) in [(&payments, false), (&refunds, true)] {
            for r in rows {
                let at = from_ms(r.try_get::<i64, _>(0)?);
                let method = parse_enum(
                    &r.try_get::<String, _>(2)?,
                    PaymentMethod::parse,
                    "payment method",
                )?;
                let amount: Option<i64> = r.try_get(3)?;
                let e = m
                    .entry(((at + off).date_naive(), r.try_get(1)?, method))
                    .or_default();
                if refund {
                    e.1 += amount.unwrap_or(0);
                } else {
                    e.0 += amount.unwrap_or(0);
                }
            }
        }
        let rows: Vec<CashRow> = m
            .into_iter()
            .map(|((day, campus_id, method), (received, refunded))| CashRow {
                day,
                campus_id,
                method,
                received_cents: received,
                refunded_cents: refunded,
            })
            .collect();
        let received = rows.iter().map(|r| r.received_cents).sum();
        let refunded = rows.iter().map(|r| r.refunded_cents).sum();
        Ok(CashReport {
            from,
            to,
            rows,
            received_cents: received,
            refunded_cents: refunded,
            net_cents: received - refunded,
        })
    }

    /// Lessons taught per teacher over lessons starting in `[from, to)`: a lesson counts when
    /// at least one student attended it (present, late or left early).
    pub async fn report_teaching(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<TeachingRow>> {
        let attended = [
            AttendanceStatus::Present,
            AttendanceStatus::Late,
            AttendanceStatus::LeftEarly,
        ];
        let rows = sqlx::query(
            "SELECT l.teacher, l.id, a.status FROM lessons l JOIN attendance a ON a.school_id = l.school_id AND a.lesson_id = l.id \
             WHERE l.school_id = $1 AND l.start_ms >= $2 AND l.start_ms < $3",
        )
        .bind(self.school_id())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        let mut by: BTreeMap<String, (std::collections::BTreeSet<String>, i64)> = BTreeMap::new();
        for r in &rows {
            let status = parse_enum(
                &r.try_get::<String, _>(2)?,
                AttendanceStatus::parse,
                "attendance status",
            )?;
            if !attended.contains(&status) {
                continue;
            }
            let e = by.entry(r.try_get(0)?).or_default();
            e.0.insert(r.try_get(1)?);
            e.1 += 1;
        }
        Ok(by
            .into_iter()
            .map(|(teacher, (lessons, n))| TeachingRow {
                teacher,
                lessons: lessons.len() as i64,
                student_lessons: n,
            })
            .collect())
    }
}
