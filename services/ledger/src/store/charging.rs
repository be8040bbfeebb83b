//! Check-in: its input and result, and charging a lesson against the student's packages
//! (with the balance alert rules that follow a charge).

use super::alerts::raise_alert;
use super::base::{append_entry_with, ms, parse_enum};
use super::packages::load_packages;
use super::Store;
use crate::Result;
use chrono::{DateTime, Utc};
use rollcall_domain::ledger::*;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

/// A check-in event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckIn {
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub source: AttendanceSource,
    pub camera_id: Option<String>,
    /// Identifies the event for replays; defaults to `student|at|source|camera`.
    pub event_key: Option<String>,
}

impl CheckIn {
    pub fn new(student: &str, at: DateTime<Utc>, source: AttendanceSource) -> Self {
        Self {
            student_id: student.into(),
            at,
            source,
            camera_id: None,
            event_key: None,
        }
    }
    pub fn key(&self) -> String {
        self.event_key.clone().unwrap_or_else(|| {
            format!(
                "{}|{}|{}|{}",
                self.student_id,
                ms(self.at),
                self.source.as_str(),
                self.camera_id.as_deref().unwrap_or("-")
            )
        })
    }
}

/// What a check-in did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckInResult {
    pub student_id: String,
    pub at: DateTime<Utc>,
    pub source: AttendanceSource,
    pub camera_id: Option<String>,
    #[serde(flatten)]
    pub outcome: CheckInOutcome,
    /// Available balance after the check-in, in hundredths of a lesson.
    pub balance_units: Units,
    pub balance: String,
    /// Dedup keys of the alerts this check-in raised.
    pub alerts: Vec<String>,
}

/// Applies an appended deduction to the in-memory package state: its package's balance (or the
/// overdraft debt when it has none).
pub(crate) fn apply_entry(pkgs: &mut [PackageState], overdraft: &mut Units, e: &Entry) {
    match &e.package_id {
        Some(id) => {
            if let Some(p) = pkgs.iter_mut().find(|p| &p.package_id == id) {
                p.balance_units += e.units;
                if matches!(e.kind, EntryKind::Deduction | EntryKind::Reversal) {
                    p.used_units -= e.units;
                }
            }
        }
        None => *overdraft -= e.units,
    }
}

impl Store {
    /// Charges `units` for a lesson unless it is already charged (net), then runs the balance
    /// alert rules. Caller holds the student lock.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn charge(
        &self,
        c: &mut AnyConnection,
        school: &str,
        student: &str,
        lesson: &BookedLesson,
        units: Units,
        at: DateTime<Utc>,
        actor: &str,
        alerts: &mut Vec<String>,
        available_after: &mut Option<Units>,
        audit_entry: bool,
    ) -> Result<DeductionDecision> {
        if units <= 0 {
            return Ok(DeductionDecision::Nothing);
        }
        let rows = sqlx::query("SELECT kind, units FROM ledger WHERE school_id = $1 AND student_id = $2 AND lesson_id = $3")
            .bind(school)
            .bind(student)
            .bind(&lesson.lesson_id)
            .fetch_all(&mut *c)
            .await?;
        let mut lesson_rows = Vec::with_capacity(rows.len());
        for r in &rows {
            let kind = parse_enum(&r.try_get::<String, _>(0)?, EntryKind::parse, "entry kind")?;
            lesson_rows.push((kind, r.try_get::<i64, _>(1)?));
        }
        let (mut pkgs, mut overdraft) = load_packages(&mut *c, school, student).await?;
        let (d, entry) =
            self.plan_charge(&pkgs, overdraft, &lesson_rows, student, lesson, units, at);
        let Some(e) = entry else {
            return Ok(d);
        };
        if !append_entry_with(&mut *c, school, &e, ms(at), actor, None, audit_entry).await? {
            return Ok(DeductionDecision::Nothing);
        }
        apply_entry(&mut pkgs, &mut overdraft, &e);
        let (avail, drafts) = self.balance_alerts(student, &pkgs, overdraft, at);
        *available_after = Some(avail);
        for a in &drafts {
            raise_alert(&mut *c, school, a, ms(at), alerts, self.now()).await?;
        }
        Ok(d)
    }

    /// What charging `units` for `lesson` decides on the student's current packages
    /// (`lesson_rows`: kind and units of the student's ledger entries of this lesson), and the
    /// deduction entry to append, if any. Pure: the caller writes the entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn plan_charge(
        &self,
        pkgs: &[PackageState],
        overdraft: Units,
        lesson_rows: &[(EntryKind, Units)],
        student: &str,
        lesson: &BookedLesson,
        units: Units,
        at: DateTime<Utc>,
    ) -> (DeductionDecision, Option<Entry>) {
        if units <= 0 {
            return (DeductionDecision::Nothing, None);
        }
        let (mut net, mut reversals) = (0i64, 0u32);
        for (kind, u) in lesson_rows {
            match kind {
                EntryKind::Deduction => net += u,
                EntryKind::Reversal => {
                    net += u;
                    reversals += 1;
                }
                _ => {}
            }
        }
        if net != 0 {
            return (DeductionDecision::Nothing, None);
        }
        let d = decide_deduction(
            pkgs,
            &lesson.campus_id,
            at,
            units,
            overdraft,
            self.policy.overdraft,
        );
        let (package_id, amount) = match &d {
            DeductionDecision::FromPackage { package_id, units } => {
                // the paid price per lesson, paid units first, gifts earning nothing
                let earned = pkgs
                    .iter()
                    .find(|p| &p.package_id == package_id)
                    .map_or(0, |p| p.charge_revenue(*units));
                (Some(package_id.clone()), -earned)
            }
            DeductionDecision::Overdraft { .. } => (None, 0),
            _ => return (d, None),
        };
        let e = Entry {
            student_id: student.into(),
            kind: EntryKind::Deduction,
            package_id,
            lesson_id: Some(lesson.lesson_id.clone()),
            units: -units,
            amount_cents: amount,
            idempotency_key: deduction_key(student, &lesson.lesson_id, reversals),
        };
        (d, Some(e))
    }

    /// The available balance after a charge and the balance alerts it raises (low balance,
    /// packages expiring soon), in that order.
    pub(crate) fn balance_alerts(
        &self,
        student: &str,
        pkgs: &[PackageState],
        overdraft: Units,
        at: DateTime<Utc>,
    ) -> (Units, Vec<AlertDraft>) {
        let avail = available_units(pkgs, overdraft, at);
        let mut drafts = Vec::new();
        if let Some(a) = low_balance_alert(student, avail, pkgs.len() as u64, &self.policy.alerts) {
            drafts.push(a);
        }
        for p in pkgs {
            if let Some(a) = expiring_alert(student, p, at, &self.policy.alerts) {
                drafts.push(a);
            }
        }
        (avail, drafts)
    }
}
